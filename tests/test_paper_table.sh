#!/usr/bin/env bash
# The README's tables of issue 17 are what scripts/paper_table.py makes of the committed results/ (run
# `scripts/paper_table.py --write` after harvesting). The majority baselines need the GLUE files: skipped without them.
# Last line: "test_paper_table: N passed, N failed, N skipped".
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GLUE=${CONDLORA_DATA:-$ROOT/../shared/data/glue}
if [ ! -f "$GLUE/RTE/dev.tsv" ]; then
    echo "test_paper_table: SKIP: no GLUE data at $GLUE (the tables' majority baselines come from it)"
    echo "test_paper_table: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
if out=$(python3 "$ROOT/scripts/paper_table.py" --data "$GLUE" --check 2>&1); then
    echo "test_paper_table: 1 passed, 0 failed, 0 skipped"
else
    echo "FAIL the README's paper tables are stale: $out"
    echo "test_paper_table: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
