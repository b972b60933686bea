/* Train LoRA on a TSV file, then predict with the trained adapter: the public API of libcondlora end to end.
 * build: cc train_predict.c $(pkg-config --cflags --libs condlora) -o train_predict
 * usage: ./train_predict MODEL_DIR TRAIN.tsv RUN_DIR "a sentence to classify" ... */
#include <condlora.h>
#include <stdio.h>

static int die(const char *what) { return fprintf(stderr, "%s: %s\n", what, cl_last_error()), 1; }

int main(int argc, char **argv) {
    if (argc < 5) return fprintf(stderr, "usage: %s MODEL_DIR TRAIN.tsv RUN_DIR TEXT...\n", argv[0]), 2;
    cl_train_params *p = cl_train_params_new();
    const char *opts[][2] = {{"method", "lora"}, {"model", argv[1]}, {"train", argv[2]}, {"out", argv[3]},
                             {"max-length", "32"}, {"max-steps", "30"}, {"lr", "5e-3"}, {"overwrite", NULL}};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (cl_train_params_set(p, opts[i][0], opts[i][1])) return die(opts[i][0]);
    cl_run *run = cl_train(p, NULL);
    if (!run) return die("train");
    printf("dev %s = %.4f after %lld steps\n", cl_run_result(run)->best_dev.m[0].name,
           cl_run_result(run)->best_dev.main, (long long)cl_run_result(run)->steps);
    cl_model_params mp = cl_model_default_params();
    mp.adapter = cl_run_dir(run);
    cl_model *m = cl_model_open(argv[1], &mp);
    cl_tokenizer *t = cl_tokenizer_open(argv[1]);
    if (!m || !t) return die("open");
    for (int i = 4; i < argc; i++) {
        float logits[64];
        const char *text = argv[i];
        if (cl_predict(m, t, &text, NULL, 1, 0, logits)) return die("predict");
        printf("%s\t%.4f\t%.4f\n", text, logits[0], logits[1]);
    }
    cl_tokenizer_close(t), cl_model_close(m), cl_run_free(run), cl_train_params_free(p);
    return 0;
}
