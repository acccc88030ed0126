/*
 * The pod sandbox's "pause" process for the e2e cluster (containerd's sandbox_image): holds the pod's
 * namespaces, reaps orphaned children, and exits on SIGINT or SIGTERM. No image registry is reachable
 * here, so the e2e builds it from this file (gcc -static) instead of pulling registry.k8s.io/pause.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(128 + sig); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &on_stop, NULL) || sigaction(SIGTERM, &on_stop, NULL) || sigaction(SIGCHLD, &on_child, NULL)) return 1;
  for (;;) pause();
}
