/* shmkit — version and export macros. */
#ifndef SHMKIT_VERSION_H
#define SHMKIT_VERSION_H

#define SHMKIT_VERSION_MAJOR 0
#define SHMKIT_VERSION_MINOR 1
#define SHMKIT_VERSION_PATCH 0
#define SHMKIT_VERSION_STRING "0.1.0"

/* The library is built with -fvisibility=hidden; only what carries SHMKIT_API is exported
 * (and the linker version script lists the same names). */
#if defined(SHMKIT_BUILDING) && defined(__GNUC__)
#define SHMKIT_API __attribute__((visibility("default")))
#else
#define SHMKIT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the library's version string, e.g. "0.1.0" (may differ from the header's when a
 * program runs against a newer shared library). */
SHMKIT_API const char *shmkit_version(void);

#ifdef __cplusplus
}
#endif

#endif
