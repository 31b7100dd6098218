/*
 * interrupt.h - Ctrl-C (SIGINT) during a call that blocks in C.
 *
 * lua.c and luajit.c catch SIGINT with a handler that makes the next Lua
 * instruction raise "interrupted!"; a call blocked in libcurl or in a sleep
 * runs no Lua instruction until it ends, so without help it would finish
 * its wait, send its request and only then raise.  While such a call runs,
 * wemasy's own handler (no SA_RESTART, so a sleep or libcurl's poll wakes
 * with EINTR) only counts the signal; the call stops at its next look and
 * sends nothing more.  When the last such call of the process ends, the
 * disposition of before comes back and gets the signal once (raise): lua.c
 * then raises "interrupted!", SIG_DFL ends the process as Ctrl-C would, and
 * a host's own handler does what it does.  A SIGINT the host ignores stays
 * ignored.  Pure C, no Lua.
 */
#ifndef WEMASY_INTERRUPT_H
#define WEMASY_INTERRUPT_H

/* err.message of a call that a SIGINT stopped. */
#define INTERRUPT_MESSAGE "interrupted (SIGINT)"

/* One call's view of the signal count, on the caller's stack. */
typedef struct interrupt_scope {
    unsigned seen; /* the count when the call began */
    int entered;   /* counted among the calls in progress */
    int on;        /* watching: entered, and SIGINT was not ignored */
} interrupt_scope;

typedef enum {
    INTERRUPT_NONE = 0, /* no SIGINT, or it went to the host's handler */
    INTERRUPT_RAISE     /* "raise" mode: the caller raises "interrupted!" */
} interrupt_end;

/* Starts watching for SIGINT (when `wanted`; the first call of the process
 * installs the handler).  Every enter needs its leave. */
void interrupt_enter(interrupt_scope *s, int wanted);

/* Whether a SIGINT came since s began; 0 for NULL or a scope not watching.
 * Async-signal-safe, cheap: libcurl's progress callback asks it. */
int interrupt_pending(const interrupt_scope *s);

/* Ends the scope; the last one restores the disposition of before and, if
 * a SIGINT came meanwhile, raises it once.  In "raise" mode the signal is
 * not handed on: INTERRUPT_RAISE tells the caller to raise Lua's error. */
interrupt_end interrupt_leave(interrupt_scope *s);

/* Sleeps `seconds`, waking at once for a SIGINT that s watches (without
 * the race of a signal that lands just before the sleep starts). */
void interrupt_sleep(const interrupt_scope *s, double seconds);

/* "raise" mode (1) or the default "deliver" mode (0), or (< 0) no change;
 * returns the mode before.
 * For programs with a prompt of their own (wemasy.repl): lua.c's handler
 * turns itself off after one Ctrl-C, and a second one would kill them. */
int interrupt_set_raise(int on);

#endif /* WEMASY_INTERRUPT_H */
