/*
 * LD_PRELOAD shim for linux.uml (Debian's user-mode Linux 6.1) on hosts whose XSAVE area is larger
 * than the one UML was written for, e.g. CPUs with AMX (XSAVE size 11008 bytes).
 *
 * UML restores a guest process's FPU state with ptrace(PTRACE_SETREGSET, NT_X86_XSTATE) and a buffer
 * of its own fixed size (2696 bytes). The host kernel accepts only a buffer of exactly its full
 * user XSAVE size and otherwise fails with EFAULT; UML then reports
 * "userspace - ptrace set fp regs failed, errno = 14" and the guest's init dies at once.
 *
 * This shim passes every other ptrace call through untouched. For that one call, when the host
 * wants a bigger buffer, it copies UML's bytes into a zeroed buffer of the host's size and clears
 * in the XSAVE header the features that lie (partly) beyond UML's bytes, so the kernel puts those
 * features (AMX tiles, which no guest process can enable) in their initial state. All state UML
 * saved is restored exactly.
 *
 * Built by uml-run.sh into its temporary run directory: cc -O2 -shared -fPIC -o shim.so this.c -ldl
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#define XSAVE_HEADER_OFFSET 512   /* xstate_bv: the first 8 bytes of the header */
#define BUF_MAX (64 * 1024)

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

static ptrace_fn real_ptrace;
static size_t host_size;            /* the kernel's full user XSAVE size, learnt on first need */
static unsigned char buf[BUF_MAX];  /* UML runs its kernel on small stacks: keep this off the stack */

/* Feature bits whose standard-format component ends beyond `len` bytes. */
static uint64_t features_beyond(size_t len) {
  uint64_t mask = 0;
  unsigned eax, ebx, ecx, edx;
  for (unsigned i = 2; i < 64; i++) {
    if (!__get_cpuid_count(0xd, i, &eax, &ebx, &ecx, &edx) || eax == 0) continue;
    if ((size_t)ebx + eax > len) mask |= (uint64_t)1 << i;
  }
  return mask;
}

long ptrace(enum __ptrace_request request, ...) {
  va_list ap;
  va_start(ap, request);
  pid_t pid = va_arg(ap, pid_t);
  void *addr = va_arg(ap, void *);
  void *data = va_arg(ap, void *);
  va_end(ap);
  if (!real_ptrace) real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");

  if (request != PTRACE_SETREGSET || (uintptr_t)addr != NT_X86_XSTATE || !data)
    return real_ptrace(request, pid, addr, data);

  struct iovec *iov = data;
  if (host_size == 0 || iov->iov_len >= host_size) {
    long r = real_ptrace(request, pid, addr, data);
    if (r == 0 || errno != EFAULT || host_size != 0) return r;
    /* Learn the host's size: GETREGSET shortens iov_len to exactly what the kernel has. */
    struct iovec probe = { buf, sizeof buf };
    if (real_ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &probe) != 0) {
      errno = EFAULT;
      return -1;
    }
    host_size = probe.iov_len;
    if (iov->iov_len >= host_size) { errno = EFAULT; return -1; }
  }

  size_t n = iov->iov_len;
  if (n < XSAVE_HEADER_OFFSET + 8 || host_size > sizeof buf) return real_ptrace(request, pid, addr, data);
  memset(buf, 0, host_size);
  memcpy(buf, iov->iov_base, n);
  uint64_t xstate_bv;
  memcpy(&xstate_bv, buf + XSAVE_HEADER_OFFSET, sizeof xstate_bv);
  static size_t mask_len;
  static uint64_t mask;
  if (mask_len != n) { mask = features_beyond(n); mask_len = n; }  /* cpuid is slow in a VM: once */
  xstate_bv &= ~mask;
  memcpy(buf + XSAVE_HEADER_OFFSET, &xstate_bv, sizeof xstate_bv);
  struct iovec full = { buf, host_size };
  return real_ptrace(request, pid, addr, &full);
}
