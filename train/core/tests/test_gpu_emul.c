/*
 * test_gpu_emul.c — the GPU kernels' algorithm, run on the CPU (label unit).
 *
 * gpu_train.cu's kernels are the phase functions of kern_epoch.h separated
 * by __syncthreads().  This test runs those same functions with the threads
 * of each phase executed one after another (which is what a barrier
 * guarantees is equivalent), driven the way feat_gpu_fit() drives them
 * (host shuffle per epoch, β^t carried across launches), for several
 * thread counts, and requires the weights to equal feat_cpu_fit()'s bit for
 * bit.  On the CPU both sides call the same libm, so any difference is an
 * ordering or indexing bug in the kernels or in the vectorised CPU trainer;
 * on a real GPU only exp()/tanh() rounding remains (tests/test_gpu.c).
 */
#include "train/core/internal.h"
#include "train/core/kern_epoch.h"
#include "train/core/tests/tc.h"

enum { N = 1037, D = 11 };

static float X[N * D];
static double Y01[N], YR[N];

static void make_data(void) {
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int j = 0; j < D; j++) {
            float x = (float)tc_gauss(&s);
            /* some exact zeros, as one-hot inputs have */
            if (j >= 8 && tc_unif(&s) < 0.6)
                x = 0.0f;
            X[i * D + j] = x;
            z += (j % 2 ? 0.7 : -0.4) * x + 0.2 * x * x;
        }
        Y01[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
        YR[i] = z + 0.3 * tc_gauss(&s);
    }
}

/* feat_gpu_fit() with the device replaced by sequential threads. */
static void emulate_fit(feat_params_t *p, const double *Y, const feat_hyper_t *hp, uint32_t nt) {
    const uint32_t h = p->h, B = hp->batch_size;
    uint32_t *perm = (uint32_t *)tc_xmalloc(N * sizeof(uint32_t));
    double *m = (double *)calloc(p->n, sizeof(double)), *v = (double *)calloc(p->n, sizeof(double));
    double *e = (double *)tc_xmalloc(B * sizeof(double));
    double *A = (double *)tc_xmalloc((size_t)B * (h ? h : 1) * sizeof(double));
    double *Hh = (double *)tc_xmalloc((size_t)B * (h ? h : 1) * sizeof(double));
    double *Dd = (double *)tc_xmalloc((size_t)B * (h ? h : 1) * sizeof(double));
    feat_epoch_args_t a;
    memset(&a, 0, sizeof(a));
    a.X = X;
    a.Y = Y;
    a.perm = perm;
    a.n = N;
    a.d = D;
    a.h = h;
    a.B = B;
    a.binary = p->task == FEAT_TASK_BINARY;
    a.act = (int)p->act;
    a.lr = hp->learning_rate;
    a.l2 = hp->l2;
    a.b1 = hp->beta1;
    a.b2 = hp->beta2;
    a.eps = hp->epsilon;
    a.w = p->w;
    a.m = m;
    a.v = v;
    a.e = e;
    a.A = A;
    a.H = Hh;
    a.D = Dd;
    for (uint32_t i = 0; i < N; i++)
        perm[i] = i;
    uint64_t s = feat_shuffle_state(hp->seed);
    double b1t = 1.0, b2t = 1.0;
    for (uint32_t ep = 0; ep < hp->epochs; ep++) {
        if (hp->shuffle)
            feat_shuffle(perm, N, &s);
        /* the kernel: its own copies of β^t */
        double kb1t = b1t, kb2t = b2t;
        for (uint32_t st = 0; st < a.n; st += a.B) {
            const feat_step_t stp = feat_step_begin(&a, st, &kb1t, &kb2t);
            if (p->kind == FEAT_MODEL_MLP) {
                for (uint32_t t = 0; t < nt; t++)
                    feat_mlp_phase1(&a, &stp, t, nt);
                for (uint32_t t = 0; t < nt; t++)
                    feat_mlp_phase2(&a, &stp, t, nt);
                for (uint32_t t = 0; t < nt; t++)
                    feat_mlp_phase3(&a, &stp, t, nt);
                for (uint32_t t = 0; t < nt; t++)
                    feat_mlp_phase4(&a, &stp, t, nt);
            } else {
                for (uint32_t t = 0; t < nt; t++)
                    feat_lin_phase1(&a, &stp, t, nt);
                for (uint32_t t = 0; t < nt; t++)
                    feat_lin_phase2(&a, &stp, t, nt);
            }
        }
        /* the host's replay */
        for (size_t st = 0; st < (N + (size_t)B - 1) / B; st++) {
            b1t *= a.b1;
            b2t *= a.b2;
        }
        CHECK(kb1t == b1t && kb2t == b2t);
    }
    free(perm);
    free(m);
    free(v);
    free(e);
    free(A);
    free(Hh);
    free(Dd);
}

typedef struct ecase {
    const char *name;
    feat_model_kind_t kind;
    feat_task_t task;
    uint32_t act, hidden, batch, epochs, shuffle;
} ecase_t;

static void test_emulated_kernels(void) {
    static const ecase_t cases[] = {
        {"logreg", FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, 0, 64, 3, 1},
        {"logreg one batch", FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, 0, 2000, 4, 1},
        {"linreg no shuffle", FEAT_MODEL_LINREG, FEAT_TASK_REGRESSION, 0, 0, 100, 3, 0},
        {"mlp relu binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU, 9, 50, 2, 1},
        {"mlp tanh binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_TANH, 16, 128, 2, 1},
        {"mlp relu regression", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_RELU, 5, 33, 2, 1},
        {"mlp tanh regression", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_TANH, 12, 1, 1, 1},
    };
    static const uint32_t threads[3] = {1, 7, 512};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const ecase_t *k = &cases[c];
        feat_hyper_t hp;
        feat_hyper_init(&hp);
        hp.batch_size = k->batch;
        hp.epochs = k->epochs;
        hp.shuffle = k->shuffle;
        hp.l2 = 3e-3;
        hp.learning_rate = 0.02;
        hp.seed = 5 + c;
        const double *Y = k->task == FEAT_TASK_BINARY ? Y01 : YR;
        feat_params_t cpu;
        CHECK_OK(feat_params_init(&cpu, k->kind, k->task, k->act, D, k->hidden, hp.seed));
        const feat_dense_t data = {X, Y, N, D};
        CHECK_OK(feat_cpu_fit(&cpu, &data, &hp, NULL, NULL));
        for (int t = 0; t < 3; t++) {
            feat_params_t emu;
            CHECK_OK(feat_params_init(&emu, k->kind, k->task, k->act, D, k->hidden, hp.seed));
            emulate_fit(&emu, Y, &hp, threads[t]);
            int same = memcmp(cpu.w, emu.w, cpu.n * sizeof(double)) == 0;
            if (!same) {
                double worst = 0;
                for (size_t i = 0; i < cpu.n; i++)
                    if (fabs(cpu.w[i] - emu.w[i]) > worst)
                        worst = fabs(cpu.w[i] - emu.w[i]);
                fprintf(stderr, "%s, %u threads: weights differ (max %.3g)\n", k->name,
                        threads[t], worst);
            }
            CHECK(same);
            feat_params_free(&emu);
        }
        if (tc_failures_ == 0)
            printf("  %-22s CPU trainer == emulated kernels (1, 7, 512 threads), bit for bit\n",
                   k->name);
        feat_params_free(&cpu);
    }
}

int main(void) {
    make_data();
    TC_RUN(test_emulated_kernels);
    return tc_result();
}
