/*
 * progress.h - progress reporting for long CLI jobs (ingest, bulk embedding).
 *
 * On a terminal: one line redrawn in place with count, rate and ETA. Not on
 * a terminal (CI, logs): a plain line every `every_s` seconds. Always a
 * summary line at the end.
 */
#ifndef SX_CLI_PROGRESS_H
#define SX_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress {
    FILE *out;
    const char *what;     /* unit, e.g. "papers" */
    int tty;
    double t0, last;
    double every_s;
} cli_progress;

/* Starts reporting to out (stderr usually). */
void cli_progress_start(cli_progress *p, FILE *out, const char *what);

/* Reports done items; fraction in [0, 1] of the whole job, or < 0 when
 * unknown (no ETA then). Cheap to call often: it draws at most 10 times/s. */
void cli_progress_update(cli_progress *p, uint64_t done, double fraction);

/* Ends the line on a terminal. */
void cli_progress_end(cli_progress *p);

#endif
