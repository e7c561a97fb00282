// SPDX-License-Identifier: GPL-2.0
/*
 * core.c - the request core shared with the host agent
 * (protocol/llview_core.c: decoding, checks, dispatch, replies), compiled
 * into the module as it is. requests.c gives it its memory source.
 */
#include "llview_core.c"
