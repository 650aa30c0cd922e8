/* The node's pod sandbox ("pause") process: holds the pod's namespaces, reaps the zombies
 * it inherits as PID 1, and exits on SIGINT/SIGTERM. Built statically by scripts/cluster
 * (gcc -static) into the image localhost/gitseal-testcluster/pause:1. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { _exit(sig == SIGTERM || sig == SIGINT ? 0 : 2); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = quit};
  struct sigaction chld = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  if (sigaction(SIGINT, &term, NULL) || sigaction(SIGTERM, &term, NULL) ||
      sigaction(SIGCHLD, &chld, NULL))
    return 1;
  for (;;)
    pause();
}
