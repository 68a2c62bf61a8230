/*
 * stm_common.c — helpers shared by every STM backend: releasing results and
 * initialising filters (see memoryd/stm.h for the contracts).
 */
#include "memoryd/compat.h"

#include <stdlib.h>
#include <string.h>

#include "memoryd/stm.h"

void md_stm_view_release(struct md_stm_view *v)
{
    if (!v)
        return;
    free(v->json);
    for (size_t i = 0; i < v->n_links; i++)
        free(v->links[i]);
    free(v->links);
    memset(v, 0, sizeof(*v));
    v->final_status = MD_VERDICT_NONE;
}

void md_stm_page_release(struct md_stm_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++)
        md_stm_view_release(&p->items[i]);
    free(p->items);
    p->items = NULL;
    p->count = 0;
    p->next_seq = 0;
}

void md_stm_filter_init(struct md_stm_filter *f)
{
    f->status = MD_VERDICT_NONE;
    f->final_status = MD_VERDICT_NONE;
    f->has_feedback = -1;
    f->domain[0] = '\0';
}
