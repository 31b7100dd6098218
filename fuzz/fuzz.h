/* fuzz.h - what every libFuzzer harness here shares. */
#ifndef WEMASY_FUZZ_H
#define WEMASY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed check aborts: libFuzzer reports it as a crash, with the input. */
#define CHECK_WHY(cond, what)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "check failed: %s: %s (%s:%d)\n", #cond, what,   \
                    __FILE__, __LINE__);                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)
#define CHECK(cond) CHECK_WHY(cond, "")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
