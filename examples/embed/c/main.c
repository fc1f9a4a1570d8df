/* Embedding fqc from C: load a compiled .fqc, run a batch of MNIST images given as a
 * raw little-endian f32 file ([N,1,28,28] NCHW, raw pixel values 0-255), print the
 * logits, one image per line.
 *
 *   cc main.c -I runtime/include -L target/debug -lfqc_runtime -o embed
 *   ./embed model.fqc images.f32 16
 */
#include <stdio.h>
#include <stdlib.h>

#include "fqc.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.fqc IMAGES.f32 N\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)strtoul(argv[3], NULL, 10);
    const size_t c = 1, h = 28, w = 28, item = c * h * w;

    char err[512];
    FqcModel *model = fqc_model_load(argv[1], err, sizeof err);
    if (!model) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    size_t classes = fqc_model_output_len(model);

    float *x = malloc(n * item * sizeof(float));
    float *y = malloc(n * classes * sizeof(float));
    FILE *f = fopen(argv[2], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), n * item, f) != n * item) {
        fprintf(stderr, "error: cannot read %zu images from %s\n", n, argv[2]);
        return 1;
    }
    fclose(f);

    FqcSession *session = fqc_session_new(model);
    int rc = fqc_session_run_f32(session, x, n, c, h, w, y, n * classes);
    if (rc != FQC_OK) {
        fprintf(stderr, "error %d: %s\n", rc, fqc_last_error());
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < classes; j++) {
            printf(j ? " %.9g" : "%.9g", y[i * classes + j]);
        }
        printf("\n");
    }
    fqc_session_free(session);
    fqc_model_free(model);
    free(x);
    free(y);
    return 0;
}
