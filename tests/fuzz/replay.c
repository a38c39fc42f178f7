/* Replays a fuzz corpus without libFuzzer: `replay DIR_OR_FILE...` calls the target on
 * every file, so `make check` runs the committed corpus under ASan+UBSan with gcc. With no
 * argument it replays the target's committed corpus; `replay --seeds DIR` writes the
 * target's seed inputs (targets built on tests/fuzz/image.c). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef REPLAY_DEFAULT_CORPUS
#define REPLAY_DEFAULT_CORPUS "tests/fuzz/corpus/ring"
#endif

/* A target may name its corpus and write its own seeds (`replay --seeds DIR`). */
extern const char *const fuzz_corpus __attribute__((weak));
int fuzz_write_seeds(const char *dir) __attribute__((weak));

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	/* With no argument: the committed corpus (the test runner starts us from the root). */
	static char *dflt[] = {NULL, REPLAY_DEFAULT_CORPUS};
	if (&fuzz_corpus && fuzz_corpus)
		dflt[1] = (char *)fuzz_corpus;
	if (argc == 3 && strcmp(argv[1], "--seeds") == 0 && fuzz_write_seeds)
		return fuzz_write_seeds(argv[2]) == 0 ? 0 : 1;
	if (argc < 2) {
		argc = 2;
		argv = dflt;
	}
	int files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			files++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
			if (run_file(path) < 0)
				return 1;
			files++;
		}
		if (d)
			closedir(d);
	}
	if (files == 0) {
		fprintf(stderr, "replay: no corpus files\n");
		return 1;
	}
	printf("replay: %d corpus inputs, no crash\n", files);
	return 0;
}
