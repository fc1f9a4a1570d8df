/* fqc.h: C API of the fqc runtime (libfqc_runtime.so, built as a cdylib).
 *
 * Load a compiled .fqc model once (JIT-compiled), create one session per thread,
 * run f32 NCHW batches. Every call that can fail returns a status code (or NULL) and
 * leaves a message for fqc_last_error() on the calling thread. No call aborts or
 * unwinds into C.
 */
#ifndef FQC_H
#define FQC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    FQC_OK = 0,         /* success */
    FQC_ERR_ARG = 1,    /* null or invalid argument */
    FQC_ERR_LOAD = 2,   /* model could not be loaded or compiled */
    FQC_ERR_INPUT = 3,  /* input shape does not fit the model */
    FQC_ERR_OUTPUT = 4, /* output buffer too small */
    FQC_ERR_PANIC = 5   /* internal error */
};

typedef struct FqcModel FqcModel;
typedef struct FqcSession FqcSession;

/* Message of the last failed call on this thread ("" if none). Valid until the next
 * failing call on this thread. */
const char *fqc_last_error(void);

/* Loads, verifies and JIT-compiles a .fqc file. NULL on failure; the message goes to
 * err_buf (if non-NULL, NUL-terminated, at most err_len bytes) and fqc_last_error(). */
FqcModel *fqc_model_load(const char *path, char *err_buf, size_t err_len);
/* Frees a model (NULL is a no-op). Existing sessions stay valid. */
void fqc_model_free(FqcModel *model);
/* Floats of the first output per batch item (e.g. 10 logits); 0 for NULL. */
size_t fqc_model_output_len(const FqcModel *model);

/* A session owns reusable activation buffers; use each from one thread at a time. */
FqcSession *fqc_session_new(const FqcModel *model);
void fqc_session_free(FqcSession *session);

/* Runs n*c*h*w floats (NCHW) at input; writes n * fqc_model_output_len(model)
 * floats to output (capacity output_len floats). Returns FQC_OK or FQC_ERR_*. */
int fqc_session_run_f32(FqcSession *session, const float *input, size_t n, size_t c,
                        size_t h, size_t w, float *output, size_t output_len);

#ifdef __cplusplus
}
#endif

#endif /* FQC_H */
