/* condlora merge: fold a PEFT / condlora adapter into its base model (W += delta) and write a complete Hugging Face
 * model directory (config.json, model.safetensors with transformers' *ForSequenceClassification names, tokenizer
 * files) that AutoModelForSequenceClassification.from_pretrained loads without PEFT. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "adapters/peft_io.h"
#include "commands.h"
#include "core/jsonio.h"
#include "core/util.h"
#include "data/glue.h"
#include "io/safetensors.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora merge --model BASE_DIR --adapter DIR --out OUT_DIR [--task NAME] [--tokenizer DIR]\n"
            "Loads the base model and the adapter (a PEFT LoRA / AdaLoRA directory or a condlora run directory, which\n"
            "means RUN/best), merges W += delta into every adapted weight and writes OUT_DIR as a Hugging Face model:\n"
            "config.json (the base config with architectures *ForSequenceClassification, id2label / label2id for the\n"
            "head's labels, problem_type regression for one label or multi_label_classification for a multi-label\n"
            "head), model.safetensors (transformers' names, the adapter's classification head, the base dtype for\n"
            "F32 / F16 / BF16 bases) and the tokenizer files.\n"
            "  --task NAME       name the labels after the GLUE task's classes (e.g. entailment, not_entailment)\n"
            "  --tokenizer DIR   copy the tokenizer files from DIR (default: BASE_DIR)\n");
}

static int write_config(const char *base_dir, const char *adapter_dir, const char *path, const cl_weights *m,
                        const cl_glue_task *task, const char *dtype, cl_error *err) {
    char src[4200];
    snprintf(src, sizeof src, "%s/config.json", base_dir);
    char *txt = NULL;
    size_t len = 0;
    int rc = cl_read_file(src, &txt, &len, err);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", src);
    }
    const int L = m->head_out.d_out;
    const char *arch = cl_model_arch(m)->seqcls_class;
    static const char *drop[] = {"architectures", "id2label", "label2id", "num_labels", "problem_type", "torch_dtype",
                                 "_name_or_path"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) cJSON_DeleteItemFromObjectCaseSensitive(j, drop[i]);
    cJSON *a = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(arch));
    /* label names: the GLUE task's (--task), else the adapter's labels.json (a condlora run's: GLUE's names or
     * those of the user's own training file), else the base config's when it names as many, else LABEL_i */
    cJSON *i2l = cJSON_AddObjectToObject(j, "id2label"), *l2i = cJSON_AddObjectToObject(j, "label2id");
    char **names = cl_peft_label_names(adapter_dir, m, task, L);
    if (!names) {
        cJSON_Delete(j);
        return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    }
    for (int k = 0; k < L; k++) {
        char key[32];
        snprintf(key, sizeof key, "%d", k);
        const char *name = task && L > 1 && task->label_names && task->label_names[k] ? task->label_names[k]
                                                                                       : names[k];
        cJSON_AddStringToObject(i2l, key, name);
        if (!cJSON_GetObjectItemCaseSensitive(l2i, name)) cJSON_AddNumberToObject(l2i, name, k);
    }
    cl_peft_label_names_free(names, L);
    cJSON_AddStringToObject(j, "problem_type", L == 1                                     ? "regression"
                                               : cl_peft_is_multi_label(adapter_dir, m) ? "multi_label_classification"
                                                                                        : "single_label_classification");
    cJSON_AddStringToObject(j, "torch_dtype", dtype);
    rc = cl_json_save(j, path, err);
    cJSON_Delete(j);
    return rc;
}

static int copy_tokenizer(const char *from, const char *to, int *copied, cl_error *err) {
    static const char *files[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "vocab.json", "merges.txt", "added_tokens.json"};
    *copied = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char s[4200], d[4200];
        snprintf(s, sizeof s, "%s/%s", from, files[i]);
        snprintf(d, sizeof d, "%s/%s", to, files[i]);
        struct stat st;
        if (stat(s, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        char *buf = NULL;
        size_t len = 0;
        int rc = cl_read_file(s, &buf, &len, err);
        if (!rc) rc = cl_atomic_write(d, buf, len, err);
        free(buf);
        if (rc) return rc;
        (*copied)++;
    }
    return 0;
}

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

int cmd_merge(int argc, char **argv) {
    const char *model_dir = NULL, *adapter = NULL, *out = NULL, *task_name = NULL, *tokdir = NULL;
    static const struct option lo[] = {{"model", 1, 0, 'm'}, {"adapter", 1, 0, 'a'},   {"out", 1, 0, 'o'},
                                       {"task", 1, 0, 'T'},  {"tokenizer", 1, 0, 'k'}, {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'a': adapter = optarg; break;
        case 'o': out = optarg; break;
        case 'T': task_name = optarg; break;
        case 'k': tokdir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_dir || !adapter || !out || optind < argc) {
        if (optind < argc) fprintf(stderr, "condlora merge: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "condlora merge: --model, --adapter and --out are required\n");
        usage(stderr);
        return 2;
    }
    cl_error err = {0};
    const cl_glue_task *task = NULL;
    if (task_name && cl_glue_task_lookup(task_name, &task, &err)) {
        fprintf(stderr, "condlora merge: option --task: %s\n", err.msg);
        return 2;
    }
    char adir[4096];
    if (cl_peft_resolve_dir(adapter, adir, sizeof adir, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        return 1;
    }
    if (same_dir(out, model_dir) || same_dir(out, adir)) {
        fprintf(stderr, "condlora merge: --out %s is the base model or the adapter directory; choose a new one\n", out);
        return 2;
    }
    int labels = 0;
    if (cl_peft_num_labels(adir, &labels, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        return 1;
    }
    cl_weights m;
    cl_load_opts mo = {.num_labels = labels};
    if (cl_model_load(&m, model_dir, &mo, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    cl_peft *pf = NULL;
    if (cl_peft_load(&pf, adir, &m, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        goto done;
    }
    if (m.head == CL_HEAD_NONE || (!m.head_from_file && !pf->has_head)) {
        fprintf(stderr, "condlora merge: neither %s nor the adapter %s holds a classification head\n", model_dir, adir);
        goto done;
    }
    if (task && m.head_out.d_out != task->num_labels) {
        fprintf(stderr, "condlora merge: the head has %d labels but GLUE %s has %d\n", m.head_out.d_out, task->name,
                task->num_labels);
        goto done;
    }
    if (cl_adapter_merge(pf->ad, &err)) {
        fprintf(stderr, "condlora merge: %s: %s\n", adir, err.msg);
        goto done;
    }
    /* the base dtype when it is one of the float types transformers loads */
    const cl_load_report *rep = cl_model_load_report(&m);
    cl_dtype dt = CL_DT_F32;
    const char *dtname = "float32";
    if (rep && !strcmp(rep->dtype, "F16")) dt = CL_DT_F16, dtname = "float16";
    else if (rep && !strcmp(rep->dtype, "BF16")) dt = CL_DT_BF16, dtname = "bfloat16";
    char path[4200];
    int ntok = 0;
    if (cl_mkdir_p(out, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (cl_model_save_weights(&m, path, dt, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/config.json", out);
    if (write_config(model_dir, adir, path, &m, task, dtname, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        goto done;
    }
    if (copy_tokenizer(tokdir ? tokdir : model_dir, out, &ntok, &err)) {
        fprintf(stderr, "condlora merge: %s\n", err.msg);
        goto done;
    }
    printf("merged %d adapted module%s of %s (%s) into %s: %s/config.json, model.safetensors (%s, %d labels), "
           "%d tokenizer file%s\n",
           pf->n_modules, pf->n_modules == 1 ? "" : "s", adir, pf->peft_type, model_dir, out, dtname,
           m.head_out.d_out, ntok, ntok == 1 ? "" : "s");
    if (!ntok) fprintf(stderr, "condlora merge: warning: no tokenizer files in %s\n", tokdir ? tokdir : model_dir);
    rc = 0;
done:
    cl_peft_free(pf);
    cl_model_free(&m);
    return rc;
}
