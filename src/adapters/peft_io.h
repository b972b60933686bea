/* PEFT interoperability: read a PEFT adapter directory onto a loaded model, and write adapter_config.json.
 *
 * An adapter directory holds adapter_config.json and adapter_model.safetensors, as PeftModel.save_pretrained writes
 * them for a LoRA (or AdaLoRA) SEQ_CLS model, and as condlora's runs write RUN/best, RUN/final and their
 * checkpoints. cl_peft_load follows PEFT 0.10's rules (tuners/lora/model.py, tuners/tuners_utils.py):
 *   - which modules are adapted: every linear layer of the encoder (query, key, value, attention.output.dense,
 *     intermediate.dense, output.dense of each layer) whose module name, e.g. "bert.encoder.layer.3.attention.self.query"
 *     (the name in AutoModelForSequenceClassification), matches target_modules: a regex string matched with
 *     re.fullmatch, or a list of names where an entry equal to the name or a suffix after a '.' matches; with a list,
 *     layers_to_transform (an int or a list, with layers_pattern or the default ".*\.[^.]*\.(\d+)\." to find the index)
 *     keeps only those layers. target_modules null means PEFT's default for BERT / RoBERTa: ["query", "value"].
 *     A target that also matches the BERT pooler or an embedding is refused (condlora adapts the encoder's linear
 *     layers only);
 *   - per-module rank and alpha: the first key K of rank_pattern then alpha_pattern for which
 *     re.match(".*\.K$", name) holds gives r = rank_pattern.get(K, r), alpha = alpha_pattern.get(K, lora_alpha);
 *     the scale is alpha / r (use_rslora: alpha / sqrt r);
 *   - tensors: base_model.model.<name>.lora_A.weight (r, d_in) and .lora_B.weight (d_out, r); the forms PEFT uses in
 *     memory ("lora_A.default.weight", "classifier.modules_to_save.default.weight") are accepted too. The head
 *     (modules_to_save "classifier": base_model.model.classifier.weight/bias for BERT, classifier.dense.* and
 *     classifier.out_proj.* for RoBERTa) is loaded when the file has it; else the model keeps its own head.
 *     A missing, unexpected or wrongly shaped tensor is an error naming the file and the tensor.
 *   - refused with a message naming adapter_config.json and the key: a peft_type other than LORA / ADALORA, bias
 *     other than "none", use_dora, layer_replication, an AdaLoRA rank_pattern, an invalid regex. lora_dropout and
 *     fan_in_fan_out (PEFT turns it off for nn.Linear) do not matter for inference.
 * AdaLoRA (peft_type ADALORA): init_r, lora_alpha, lora_A / lora_B / lora_E, scale alpha / (init_r + 1e-5) as PEFT.
 *
 * Configurations written by condlora before cl_peft_write_config existed (a "condlora" object and no "rank_pattern"
 * key) are read with condlora's own option semantics: the modules are condlora.options.target_modules x layers, and
 * a SaLoRA run's per-module ranks are those of its tensors (a module without tensors kept no component).
 *
 * cl_peft_write_config writes what PEFT 0.10 needs to rebuild the adapter: the keys runio.c's checkpoints wrote
 * (peft_type, task_type, base_model_name_or_path, r, lora_alpha, lora_dropout, use_rslora, bias, inference_mode,
 * fan_in_fan_out, target_modules, modules_to_save, AdaLoRA's init_r ... orth_reg_weight), plus layers_to_transform
 * and, for LoRA, rank_pattern / alpha_pattern keyed "encoder.layer.L.attention.self.query" for the modules whose
 * exported rank (cl_adapter_ranks: SaLoRA's learned ranks) or alpha differs from r / lora_alpha. The module set is
 * the adapter's own: a list of module names when it is every (target type x selected layer) pair and the names are
 * unambiguous ("output.dense" alone would also name attention.output.dense), else a regex string that lists exactly
 * the modules that have at least one component (PEFT needs r > 0, so a module with rank 0 is left out).
 * The "condlora" object runio.c used to put in adapter_config.json (method, every option, a note) goes to
 * condlora_adapter.json in the same directory instead: PEFT 0.10's LoraConfig(**json) raises TypeError on a key it
 * does not know, so a config holding it cannot be loaded by PeftModel.from_pretrained. */
#ifndef CL_PEFT_IO_H
#define CL_PEFT_IO_H
#include <stddef.h>
#include "adapters/adapter.h"
#include "adapters/params.h"
#include "core/error.h"
#include "model/model.h"

typedef struct {
    char dir[4096];       /* the adapter directory read (a condlora run directory resolves to RUN/best) */
    char peft_type[16];   /* "LORA" or "ADALORA" */
    cl_adapter *ad;       /* method lora (adalora for ADALORA), bound to P, materialised */
    cl_params P;          /* the adapter's tensors, and the head when the file carries it */
    cl_head_params head;
    int has_head;         /* 1: the head came from the file; the model's head pointers point into P until free */
    int num_labels;       /* rows of the model's head (0: no head) */
    int n_modules;        /* adapted (layer, module) pairs */
    cl_weights *model;
    float *saved_head[4]; /* the model's head pointers before, restored by cl_peft_free */
    char targets[160], layers[1024]; /* AdaLoRA: the adapter's target_modules / layers options */
} cl_peft;

/* PATH if it holds adapter_config.json, else PATH/best if that does (a condlora run directory); else CL_EMISSING. */
int cl_peft_resolve_dir(const char *path, char *out, size_t n, cl_error *err);
/* Rows of the classification head stored in the adapter directory's adapter_model.safetensors (0 when it holds
 * none): load the base model with cl_load_opts.num_labels = this before cl_peft_load. */
int cl_peft_num_labels(const char *dir, int *num_labels, cl_error *err);
/* Builds the adapter described by DIR (a PEFT adapter directory or a condlora run directory) for MODEL and loads
 * its tensors (see above). The model must outlive the returned object; apply it with cl_adapter_hook(pf->ad) or
 * cl_adapter_merge(pf->ad). */
int cl_peft_load(cl_peft **out, const char *dir, cl_weights *model, cl_error *err);
/* Frees the adapter (unmerging it if merged) and restores the model's head pointers. */
void cl_peft_free(cl_peft *pf);

/* Every adapter option as a JSON object (run.json's options.adapter, condlora_adapter.json's options). */
struct cJSON;
struct cJSON *cl_adapter_opts_json(const cl_adapter_opts *a);

/* Writes PATH (adapter_config.json, atomically) for the adapter AD; base_model is base_model_name_or_path. */
/* train_pooler: a BERT head trained with its pooler; modules_to_save then lists "pooler" too */
int cl_peft_write_config(const char *path, const cl_adapter *ad, const char *base_model, int train_pooler,
                         cl_error *err);

/* The L label names of a classifier (strdup'ed; free with cl_peft_label_names_free): ADAPTER_DIR/labels.json's
 * id2label (written with every condlora run's adapter), else the model config's id2label, else TASK's, else
 * transformers' LABEL_k. ADAPTER_DIR and TASK may be NULL. NULL when out of memory. */
struct cl_glue_task;
char **cl_peft_label_names(const char *adapter_dir, const cl_weights *m, const struct cl_glue_task *task, int L);
void cl_peft_label_names_free(char **names, int L);
/* 1 when the classifier is multi-label (a sigmoid per label): ADAPTER_DIR/labels.json's problem_type (a condlora
 * run's adapter) is "multi_label_classification", or, without one, the model config's. ADAPTER_DIR may be NULL. */
int cl_peft_is_multi_label(const char *adapter_dir, const cl_weights *m);

#endif
