/* For tests/test_cli.py: `spin SECONDS` burns CPU in cbpf_test_busy_spin (a symbol the profile test looks for);
 * `getpid N` makes N getpid() system calls and exits. Built static, so its start-up makes the same calls each run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) void cbpf_test_busy_spin(double seconds)
{
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (int i = 0; i < 200000; i++)
            sink += i;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "spin") == 0) {
        cbpf_test_busy_spin(atof(argv[2]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "getpid") == 0) {
        for (long i = atol(argv[2]); i > 0; i--)
            syscall(SYS_getpid);
        return 0;
    }
    fprintf(stderr, "usage: %s spin SECONDS | getpid N\n", argv[0]);
    return 2;
}
