/*
 * interrupt.c - wemasy's SIGINT handler while calls block in C (see
 * interrupt.h for why).
 *
 * Dispositions are process-wide and calls may run in several threads (two
 * clients, two threads): the first call in installs the handler and keeps
 * the disposition it replaced, the last one out puts that back.  The handler
 * only increments a counter; each call compares it with the value it began
 * with.  No SA_RESTART: that is what wakes nanosleep/pselect and libcurl's
 * poll with EINTR.
 */
#include "interrupt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

/* In a program with threads the kernel may hand SIGINT to another thread,
 * whose EINTR does not wake this one: a sleep looks at the count at least
 * this often. */
#define SLEEP_SLICE 0.2

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int calls;                    /* scopes entered and not yet left */
static int installed;                /* our handler is in place */
static struct sigaction previous;    /* what it replaced */
static unsigned at_install;          /* the count when it went in */
static unsigned hits;                /* SIGINTs our handler saw, ever */
static int raise_mode;

static unsigned count(void)
{
    return __atomic_load_n(&hits, __ATOMIC_SEQ_CST);
}

static void on_sigint(int sig)
{
    (void)sig;
    /* A lock-free atomic: async-signal-safe, and leaves errno alone. */
    __atomic_add_fetch(&hits, 1, __ATOMIC_SEQ_CST);
}

static int is_ignored(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_IGN;
}

/* With the lock held: our handler in, the old one kept, unless the host
 * ignores SIGINT (then it stays ignored and nobody watches). */
static void install(void)
{
    struct sigaction ours;

    memset(&ours, 0, sizeof ours);
    ours.sa_handler = on_sigint;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = 0;
    installed = 0;
    if (sigaction(SIGINT, &ours, &previous) != 0)
        return;
    if (is_ignored(&previous)) {
        sigaction(SIGINT, &previous, NULL);
        return;
    }
    installed = 1;
    at_install = count();
}

void interrupt_enter(interrupt_scope *s, int wanted)
{
    memset(s, 0, sizeof *s);
    if (!wanted)
        return;
    pthread_mutex_lock(&lock);
    if (calls++ == 0)
        install();
    s->entered = 1;
    s->on = installed;
    s->seen = count();
    pthread_mutex_unlock(&lock);
}

int interrupt_pending(const interrupt_scope *s)
{
    return s != NULL && s->on && count() != s->seen;
}

interrupt_end interrupt_leave(interrupt_scope *s)
{
    int mine = interrupt_pending(s), hand_on = 0, raising;

    if (!s->entered)
        return INTERRUPT_NONE;
    s->entered = 0;
    raising = __atomic_load_n(&raise_mode, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&lock);
    if (--calls == 0 && installed) {
        sigaction(SIGINT, &previous, NULL);
        installed = 0;
        /* Counted after the restore: a signal can no longer reach us. */
        hand_on = count() != at_install;
    }
    pthread_mutex_unlock(&lock);
    if (raising)
        return mine || hand_on ? INTERRUPT_RAISE : INTERRUPT_NONE;
    /* Once, to the handler of before: it runs before raise() returns. */
    if (hand_on)
        raise(SIGINT);
    return INTERRUPT_NONE;
}

static double monotonic(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec to_timespec(double seconds)
{
    struct timespec ts;

    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    return ts;
}

void interrupt_sleep(const interrupt_scope *s, double seconds)
{
    struct timespec ts = to_timespec(seconds);
    sigset_t block, old;
    double until;

    if (s == NULL || !s->on) {
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return;
    }
    /* SIGINT blocked between the look at the count and the sleep, and
     * unblocked by pselect itself: a signal in between still wakes it. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (until = monotonic() + seconds; !interrupt_pending(s);) {
        double left = until - monotonic();

        if (left <= 0)
            break;
        ts = to_timespec(left < SLEEP_SLICE ? left : SLEEP_SLICE);
        pselect(0, NULL, NULL, NULL, &ts, &old);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int interrupt_set_raise(int on)
{
    if (on < 0)
        return __atomic_load_n(&raise_mode, __ATOMIC_SEQ_CST);
    return __atomic_exchange_n(&raise_mode, on != 0, __ATOMIC_SEQ_CST);
}
