/* no_io_uring - run a command the way a container's default seccomp
 * profile would: io_uring_setup fails with EPERM.  Lets the tests check
 * that repvold notices at start-up and falls back to libaio.
 *
 *   no_io_uring COMMAND [ARGS...]
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int
main (int argc, char **argv)
{
  struct sock_filter filter[] = {
    /* Only judge x86_64 system calls; anything else is allowed. */
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0],
                             .filter = filter };

  if (argc < 2) {
    fprintf (stderr, "usage: no_io_uring COMMAND [ARGS...]\n");
    return 2;
  }
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
      prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1) {
    fprintf (stderr, "no_io_uring: seccomp: %s\n", strerror (errno));
    return 1;
  }
  execvp (argv[1], argv + 1);
  fprintf (stderr, "no_io_uring: %s: %s\n", argv[1], strerror (errno));
  return 127;
}
