/*
 * common/ftype.h — the declared type of a feature, shared by every module
 * (config, store, ingest, train's standalone core).  Header-only; valid C and
 * C++.  The numbers are stored on disk: never renumber.
 */
#ifndef FEAT_COMMON_FTYPE_H
#define FEAT_COMMON_FTYPE_H

typedef enum feat_ftype {
    FEAT_FT_NONE = 0,
    FEAT_FT_DOUBLE = 1,
    FEAT_FT_INT64 = 2,
    FEAT_FT_BOOL = 3,
    FEAT_FT_STRING = 4   /* categorical */
} feat_ftype_t;

#endif
