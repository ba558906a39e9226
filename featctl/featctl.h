/*
 * featctl/featctl.h — what featctl's command files share.  featctl.c holds
 * main, the feature, status and drift commands; featctl_models.c the model
 * commands; featctl_export.c export.  Every shared name starts with featctl_; the rest is static.
 */
#ifndef FEAT_FEATCTL_FEATCTL_H
#define FEAT_FEATCTL_FEATCTL_H

#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "rpc/client.h"

/* Set by main() before a command runs, read-only afterwards. */
extern int featctl_json;              /* --json: print JSON instead of tables */
extern int64_t featctl_timeout_ms;    /* per call (--timeout) */
extern feat_client_t *featctl_cli;    /* the connection to featd */

/* The ints the functions below return are featctl's exit status: 0 done,
 * 1 a call failed (or featd is unreachable), 2 bad usage or configuration. */

void featctl_usage(FILE *f);
/* One line on stderr for a call that ended with gRPC status code (not 0)
 * and msg; returns 1. */
int featctl_fail_call(const char *what, int code, const char *msg);
/* Packs req, calls method, fills resp; 0 or 1 (after featctl_fail_call). */
int featctl_call(const char *method, const ProtobufCMessage *req, feat_buf_t *resp, const char *what);
/* An aligned table: header, then cells[r * ncols + c]. */
void featctl_print_table(char **header, size_t ncols, feat_buf_t *cells, size_t nrows);

/* The model commands: argv holds the command's arguments (argv[0] is the
 * first after the command's name); each returns the exit status. */
int featctl_models(int argc, char **argv);
int featctl_promote(int argc, char **argv);
int featctl_rollback(int argc, char **argv);
int featctl_retrain(int argc, char **argv);
int featctl_predict(int argc, char **argv);

/* featctl export (featctl_export.c). */
int featctl_export(int argc, char **argv);
int featctl_score(int argc, char **argv);

#endif
