/*
 * progress.c - count, rate and ETA for long jobs; see progress.h.
 */
#include "progress.h"

#include <unistd.h>

#include "../common/sx.h"

void cli_progress_start(cli_progress *p, FILE *out, const char *what) {
    p->out = out;
    p->what = what;
    p->tty = isatty(fileno(out));
    p->t0 = p->last = sx_now();
    p->every_s = 10.0;
}

static void format_eta(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, uint64_t done, double fraction) {
    double now = sx_now();
    if (now - p->last < (p->tty ? 0.1 : p->every_s)) return;
    p->last = now;
    double el = now - p->t0;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32] = "?";
    if (fraction > 0.001) format_eta(eta, sizeof eta, el / fraction - el);
    if (p->tty) {
        char bar[31];
        int filled = fraction >= 0 ? (int)(fraction * 30) : 0;
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(p->out, "\r[%s] %5.1f%% %llu %s, %.0f/s, ETA %s   ", bar,
                fraction >= 0 ? fraction * 100 : 0.0, (unsigned long long)done, p->what, rate, eta);
    } else {
        fprintf(p->out, "progress: %llu %s, %.0f/s, %.1f%%, ETA %s\n", (unsigned long long)done, p->what,
                rate, fraction >= 0 ? fraction * 100 : 0.0, eta);
    }
    fflush(p->out);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fputc('\n', p->out);
    fflush(p->out);
}
