/* shmkit — error messages (one table: SHMKIT_ERRNO_MAP in shmkit/error.h). */
#include <string.h>

#include "internal.h"

const char *shmkit_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err < 0)
		err = -err;
	switch (err) {
#define SHMKIT__ERRCASE(code, msg) \
	case code:                 \
		return msg;
		SHMKIT_ERRNO_MAP(SHMKIT__ERRCASE)
#undef SHMKIT__ERRCASE
	default:
		break;
	}
	/* strerrordesc_np() returns a static string without touching errno or a buffer, so
	 * unlike strerror() it is thread-safe. */
	const char *msg = strerrordesc_np(err);
	return msg ? msg : "unknown error";
}

const char *shmkit_version(void)
{
	return SHMKIT_VERSION_STRING;
}
