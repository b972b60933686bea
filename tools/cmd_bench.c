/* condlora bench: time training steps or inference of an encoder with random weights (the llama-bench of
 * condlora). Prints one JSON line. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "adapters/adapter.h"
#include "commands.h"
#include "core/util.h"
#include "model/encoder.h"
#include "model/gemm_bf16.h"

static const char ROBERTA_BASE[] =
    "{\"model_type\":\"roberta\",\"vocab_size\":50265,\"hidden_size\":768,\"num_hidden_layers\":12,"
    "\"num_attention_heads\":12,\"intermediate_size\":3072,\"max_position_embeddings\":514,\"type_vocab_size\":1,"
    "\"pad_token_id\":1,\"layer_norm_eps\":1e-05,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
    "\"attention_probs_dropout_prob\":0.1}";
static const char BERT_BASE[] =
    "{\"model_type\":\"bert\",\"vocab_size\":30522,\"hidden_size\":768,\"num_hidden_layers\":12,"
    "\"num_attention_heads\":12,\"intermediate_size\":3072,\"max_position_embeddings\":512,\"type_vocab_size\":2,"
    "\"pad_token_id\":0,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
    "\"attention_probs_dropout_prob\":0.1}";

/* all-mpnet-base-v2's config.json (MPNET.md): roberta-base's shape with MPNet's relative-attention bias */
static const char MPNET_BASE[] =
    "{\"model_type\":\"mpnet\",\"vocab_size\":30527,\"hidden_size\":768,\"num_hidden_layers\":12,"
    "\"num_attention_heads\":12,\"intermediate_size\":3072,\"max_position_embeddings\":514,"
    "\"pad_token_id\":1,\"layer_norm_eps\":1e-05,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
    "\"attention_probs_dropout_prob\":0.1,\"relative_attention_num_buckets\":32}";

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora bench [--config roberta-base|bert-base|mpnet-base|CONFIG.json] [--mode train|infer]\n"
            "                      [--method none|lora|condlora] [--batch B] [--seq T] [--steps N] [--warmup N]\n"
            "                      [--threads K] [--labels L] [--rank R] [--seed S] [--precision fp32|bf16]\n"
            "Times N steps (after the warm-up) of a model with random weights of that shape and prints one JSON line:\n"
            "tokens_per_s (B*T / median step), step_s_median, step_s_min, user_s_per_step / sys_s_per_step (user /\n"
            "system CPU time of the timed steps / N), peak_rss_mib, ...\n"
            "  train: a training forward (dropout on) with labels and the backward (the head trainable, the encoder\n"
            "         frozen; with --method, the adapter on query,value of every layer too, plus an AdamW step).\n"
            "  infer: an inference forward.\n"
            "  --precision bf16: the encoder's frozen linear layers in bf16 with fp32 accumulation (AVX512_BF16).\n"
            "Defaults: roberta-base, train, none, batch 16, seq 128, 5 steps, 1 warm-up, threads = OMP_NUM_THREADS\n"
            "or all cores, 2 labels, rank 8, fp32.\n");
}

/* user (sys = 0) or system (sys = 1) CPU seconds of this process so far */
static double cpu_s(int sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const struct timeval *t = sys ? &ru.ru_stime : &ru.ru_utime;
    return (double)t->tv_sec + t->tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cmd_bench(int argc, char **argv) {
    const char *config = "roberta-base", *mode = "train", *method = "none", *precision = "fp32";
    int B = 16, T = 128, steps = 5, warmup = 1, threads = 0, labels = 2, rank = 8;
    unsigned long long seed = 1;
    static const struct option lo[] = {{"config", 1, 0, 'c'}, {"mode", 1, 0, 'm'},   {"method", 1, 0, 'M'},
                                       {"batch", 1, 0, 'b'},  {"seq", 1, 0, 's'},    {"steps", 1, 0, 'n'},
                                       {"warmup", 1, 0, 'w'}, {"threads", 1, 0, 't'}, {"labels", 1, 0, 'l'},
                                       {"rank", 1, 0, 'r'},   {"seed", 1, 0, 'S'},   {"help", 0, 0, 'h'},
                                       {"precision", 1, 0, 'P'}, {0, 0, 0, 0}};
    int c, li = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        long v = 0;
        if (c != 'c' && c != 'm' && c != 'M' && c != 'P' && c != 'h' && c != '?') {
            char *end = NULL;
            v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < (c == 'w' || c == 't' || c == 'S' ? 0 : 1) || v > 1000000) {
                fprintf(stderr, "condlora bench: option --%s: '%s' is not a valid count\n", li >= 0 ? lo[li].name : "?",
                        optarg);
                return 2;
            }
        }
        li = -1;
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': mode = optarg; break;
        case 'M': method = optarg; break;
        case 'P': precision = optarg; break;
        case 'b': B = (int)v; break;
        case 's': T = (int)v; break;
        case 'n': steps = (int)v; break;
        case 'w': warmup = (int)v; break;
        case 't': threads = (int)v; break;
        case 'l': labels = (int)v; break;
        case 'r': rank = (int)v; break;
        case 'S': seed = (unsigned long long)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "condlora bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    int train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "infer")) {
        fprintf(stderr, "condlora bench: option --mode: '%s' is not train or infer\n", mode);
        return 2;
    }
    int use_adapter = strcmp(method, "none") != 0;
    cl_error err = {0};
    int bf16 = 0;
    if (cl_precision_parse(precision, &bf16, &err)) {
        fprintf(stderr, "condlora bench: %s\n", err.msg);
        return 2;
    }
    cl_method meth = CL_METHOD_LORA;
    if (use_adapter && cl_method_parse(method, &meth, &err)) {
        fprintf(stderr, "condlora bench: %s (or none)\n", err.msg);
        return 2;
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    threads = omp_get_max_threads();

    cl_config cfg;
    int rc;
    if (!strcmp(config, "roberta-base")) rc = cl_config_parse(&cfg, ROBERTA_BASE, strlen(ROBERTA_BASE), config, &err);
    else if (!strcmp(config, "bert-base")) rc = cl_config_parse(&cfg, BERT_BASE, strlen(BERT_BASE), config, &err);
    else if (!strcmp(config, "mpnet-base")) rc = cl_config_parse(&cfg, MPNET_BASE, strlen(MPNET_BASE), config, &err);
    else rc = cl_config_load(&cfg, config, &err);
    if (rc) {
        fprintf(stderr, "condlora bench: %s\n", err.msg);
        return 1;
    }
    cl_weights m;
    cl_head_kind hk = cl_arch_get(cfg.arch)->head;
    if (cl_model_init_random(&m, &cfg, hk, labels, seed, &err)) {
        fprintf(stderr, "condlora bench: %s\n", err.msg);
        cl_config_free(&cfg);
        return 1;
    }
    cl_config_free(&cfg);
    const int H = m.cfg.hidden_size, L = m.head_out.d_out;
    cl_adapter *ad = NULL;
    cl_params P;
    cl_params_init(&P);
    cl_lin_hook hook;
    if (use_adapter) {
        cl_adapter_opts ao;
        cl_adapter_opts_default(&ao, meth);
        ao.r = rank;
        if (cl_adapter_create(&ad, &ao, &m, &err) || cl_adapter_register(ad, &P, &err) ||
            cl_params_alloc(&P, &err) || cl_adapter_bind(ad, &P, &err)) {
            fprintf(stderr, "condlora bench: %s\n", err.msg);
            cl_adapter_free(ad);
            cl_params_free(&P);
            cl_model_free(&m);
            return 1;
        }
        cl_adapter_init(ad, seed);
        hook = cl_adapter_hook(ad);
    }
    if (bf16) {
        /* after the adapter exists (it checks the W it adapts); W^T only when training goes through the layers */
        cl_bf16_opts bo = {.backward = train && use_adapter,
                           .keep = ad && cl_adapter_method(ad) == CL_METHOD_CONDLORA ? cl_bf16_keep_adapted : NULL,
                           .keep_ctx = &hook};
        if (cl_model_to_bf16(&m, &bo, &err)) {
            fprintf(stderr, "condlora bench: %s\n", err.msg);
            cl_adapter_free(ad);
            cl_params_free(&P);
            cl_model_free(&m);
            return 1;
        }
    }
    cl_encoder *e = NULL;
    if (cl_encoder_new(&e, &m, B, T, train, &err)) {
        fprintf(stderr, "condlora bench: %s\n", err.msg);
        cl_adapter_free(ad);
        cl_params_free(&P);
        cl_model_free(&m);
        return 1;
    }
    int32_t *ids = malloc((size_t)B * T * sizeof(int32_t)), *len = malloc((size_t)B * sizeof(int32_t)),
            *lab = malloc((size_t)B * sizeof(int32_t));
    float *tgt = malloc((size_t)B * sizeof(float));
    float *gdw = calloc((size_t)H * H, 4), *gdb = calloc(H, 4), *gow = calloc((size_t)L * H, 4), *gob = calloc(L, 4);
    double *times = malloc(sizeof(double) * (size_t)(steps + warmup));
    if (!ids || !len || !lab || !tgt || !gdw || !gdb || !gow || !gob || !times) {
        fprintf(stderr, "condlora bench: out of memory\n");
        return 1;
    }
    cl_rng rng;
    cl_rng_seed(&rng, seed + 17);
    const int lo_id = 3 < m.cfg.vocab_size ? 3 : 0;
    for (int i = 0; i < B * T; i++) ids[i] = lo_id + (int)cl_rng_below(&rng, (uint64_t)(m.cfg.vocab_size - lo_id));
    for (int b = 0; b < B; b++) {
        len[b] = T;
        lab[b] = (int)cl_rng_below(&rng, (uint64_t)L);
        tgt[b] = (float)cl_rng_normal(&rng);
    }
    cl_batch bt = {ids, NULL, len, B, T};
    cl_head_grads g = {gdw, gdb, gow, gob};
    double loss_sum = 0, user0 = 0, sys0 = 0;
    for (int s = 0; s < steps + warmup; s++) {
        if (s == warmup) user0 = cpu_s(0), sys0 = cpu_s(1);
        double t0 = cl_now();
        cl_fwd_opts fo = {.train = train, .seed = seed + (uint64_t)s, .hook = ad ? &hook : NULL};
        if (train) {
            if (L == 1) fo.targets = tgt;
            else fo.labels = lab;
        }
        if (ad) {
            if (train) cl_adapter_materialise(ad);
            if (cl_adapter_begin_batch(ad, B, T, seed + (uint64_t)s, &err)) break;
        }
        float loss = 0;
        if (cl_encoder_forward(e, &bt, &fo, NULL, &loss, &err)) break;
        if (train) {
            if (cl_encoder_backward(e, 1.0f, &g, &err)) break;
            if (ad) {
                if (cl_adapter_check(ad, &err)) break;
                cl_params_adamw_step(&P, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f);
                cl_params_zero_grad(&P);
            }
            loss_sum += loss;
        }
        times[s] = cl_now() - t0;
    }
    int ok = err.code == CL_OK;
    const double user_step = (cpu_s(0) - user0) / steps, sys_step = (cpu_s(1) - sys0) / steps;
    if (ok) {
        qsort(times + warmup, (size_t)steps, sizeof(double), cmp_double);
        double med = steps % 2 ? times[warmup + steps / 2]
                               : 0.5 * (times[warmup + steps / 2 - 1] + times[warmup + steps / 2]);
        const char *ct = getenv("OPENBLAS_CORETYPE");
        printf("{\"bench\":\"encoder\",\"config\":\"%s\",\"mode\":\"%s\",\"method\":\"%s\",\"batch\":%d,\"seq\":%d,"
               "\"threads\":%d,\"steps\":%d,\"warmup\":%d,\"precision\":\"%s\",\"tokens_per_s\":%.2f,"
               "\"step_s_median\":%.5f,\"step_s_min\":%.5f,\"user_s_per_step\":%.5f,\"sys_s_per_step\":%.5f,"
               "\"peak_rss_mib\":%.1f,"
               "\"workspace_mib\":%.1f,\"bf16_weights_mib\":%.1f,\"params\":%llu,\"openblas_coretype\":\"%s\","
               "\"gomp_spincount\":\"%s\",\"omp_wait_policy\":\"%s\"}\n",
               config, mode, method, B, T, threads, steps, warmup, precision, (double)B * T / med, med, times[warmup],
               user_step, sys_step, cl_peak_rss_kib() / 1024.0, cl_encoder_workspace_bytes(e) / 1048576.0,
               cl_model_bf16_bytes(&m) / 1048576.0, (unsigned long long)m.n_params_total, ct ? ct : "",
               getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT") : "",
               getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "");
    } else {
        fprintf(stderr, "condlora bench: %s\n", err.msg);
    }
    free(ids), free(len), free(lab), free(tgt), free(gdw), free(gdb), free(gow), free(gob), free(times);
    cl_encoder_free(e);
    cl_adapter_free(ad);
    cl_params_free(&P);
    cl_model_free(&m);
    return ok ? 0 : 1;
}
