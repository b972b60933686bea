/* The one place where the encoder meets an adapter method. The encoder computes every frozen linear layer
 * y = x W^T + b and then, if a hook is installed, lets it add its delta; in backward it computes dx = dy W and lets
 * the hook accumulate its own parameter gradients and add its contribution to dx. The encoder never knows which
 * method (LoRA, CondLoRA, SaLoRA, AdaLoRA) is active.
 *
 * Shapes: x (T, d_in), y and dy (T, d_out), dx (T, d_in), T = batch * seq rows, row-major.
 * In training mode the encoder keeps every adapted linear layer's input x alive until backward, and calls backward
 * in exactly the reverse order of the forward calls (layer by layer, module by module). */
#ifndef CL_HOOK_H
#define CL_HOOK_H
#include "model/model.h"

typedef struct cl_lin_hook {
    void *ctx;
    /* non-zero when (layer, m) is adapted */
    int (*adapted)(void *ctx, int layer, cl_module m);
    /* y += delta(x). train: apply dropout / stochastic gates and keep what backward needs. */
    void (*forward)(void *ctx, int layer, cl_module m, const float *x, float *y, int T, int train);
    /* accumulate parameter gradients (+=) and dx += (d delta / dx)^T dy */
    void (*backward)(void *ctx, int layer, cl_module m, const float *x, const float *dy, float *dx, int T);
} cl_lin_hook;

#endif
