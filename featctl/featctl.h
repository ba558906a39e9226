/*
 * featctl/featctl.h — what featctl's command files share.  featctl.c holds
 * main, the feature and drift commands; featctl_models.c the model commands.
 */
#ifndef FEAT_SERVE_FEATCTL_H
#define FEAT_SERVE_FEATCTL_H

#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "rpc/client.h"

extern int json_out;          /* --json */
extern int64_t timeout_ms;    /* per call */
extern const char *addr;
extern feat_client_t *cli;

void usage(FILE *f);
/* One line on stderr for a failed call; returns 1. */
int fail_call(const char *what, int code, const char *msg);
/* Packs req, calls method, fills resp; 0 or 1 (after fail_call). */
int call(const char *method, const ProtobufCMessage *req, feat_buf_t *resp, const char *what);
/* Splits "a,b,c" in place. */
size_t split(char *s, char **out, size_t max);
/* An aligned table: header, then cells[r * ncols + c]. */
void print_table(char **header, size_t ncols, feat_buf_t *cells, size_t nrows);

int featctl_models(int argc, char **argv);
int featctl_promote(int argc, char **argv);
int featctl_rollback(int argc, char **argv);
int featctl_retrain(int argc, char **argv);
int featctl_predict(int argc, char **argv);
int featctl_score(int argc, char **argv);

#endif
