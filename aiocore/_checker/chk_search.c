/*
 * chk_search.c -- the C search loop itself: breadth-first over the states of
 * chk_store.c, recording edges, stopping at a memo miss (Python fills it and
 * calls chk_run again), a terminal state, a violation or a full layer; then
 * the accessors _fast.py reads results with.
 *
 * Follows chk_store.c in the same translation unit (_core_c.SOURCE).
 */

static int add_edge(chk *c, uint32_t a, uint64_t bkey) {
    if (c->ecount == c->ecap) {
        uint32_t *e = realloc(c->esrc, c->ecap * 2 * sizeof(uint32_t));
        if (!e) return -1;
        c->esrc = e;
        uint64_t *d = realloc(c->edst, c->ecap * 2 * 8);
        if (!d) return -1;
        c->edst = d; c->ecap *= 2;
    }
    c->esrc[c->ecount] = a; c->edst[c->ecount] = bkey;
    c->ecount++;
    return 0;
}

/* insert the pending successors of state pend_from, in order */
static int flush(chk *c) {
    for (uint32_t t = 0; t < c->pend_n; t++) {
        if (insert_key(c, c->kbuf[t], c->wbuf + (uint64_t)t * c->W, c->pend_from) < 0) return -1;
        if (c->pend_quiet && add_edge(c, c->pend_from, c->kbuf[t])) return -1;
    }
    c->pend_n = 0;
    return 0;
}

/* On a memo miss at (state cur, process i0): the misses of this and the next
   states of the layer, in the order the Python loop meets them, each once --
   up to a full batch, a state with an id not yet described, or LOOKAHEAD
   states on.  Python fills them in that order (the same ids as one by one). */
#define LOOKAHEAD 256
static void gather(chk *c, int i0) {
    const int n = c->n;
    uint32_t s[MAXP + 1];
    uint64_t rm[MAXP];
    c->nbatch = 0;
    for (uint64_t j = c->cur; j < c->layer_end && j < c->cur + LOOKAHEAD; j++) {
        decode(c, c->key[j], s);
        for (int q = 0; q < n; q++) {
            if (s[q + 1] >= c->pcount) return;
            rm[q] = c->arm ? c->presv[s[q + 1]] : 0;
        }
        for (int i = (j == c->cur ? i0 : 0); i < n; i++) {
            if ((c->pquiet[s[i + 1]] >> (32 + i)) & 1) continue;
            uint64_t resv = 0;
            if (c->arm) for (int q = 0; q < n; q++) if (q != i) resv |= rm[q];
            int32_t r = resv ? resv_id(c, resv) : 0;
            if (r < 0) return;
            if (mfind(c, ((uint32_t)r + 1) << 4 | i, s[i + 1], s[0])) continue;
            uint32_t e[5] = {i, s[i + 1], s[0], (uint32_t)resv, (uint32_t)(resv >> 32)};
            uint32_t k;
            for (k = 0; k < c->nbatch; k++) if (!memcmp(&c->batch[5 * k], e, sizeof e)) break;
            if (k < c->nbatch) continue;
            memcpy(&c->batch[5 * c->nbatch], e, sizeof e);
            if (++c->nbatch == 256) return;
        }
    }
}

/* the misses gathered: 5 words each (process, its id, shared id, reservations low, high) */
uint32_t chk_batch(chk *c, uint32_t *out) {
    memcpy(out, c->batch, c->nbatch * 5 * sizeof(uint32_t));
    return c->nbatch;
}

int chk_run(chk *c) {
    const int n = c->n, W = c->W;
    const mslot *ms[MAXP];
    uint64_t rm[MAXP];
    uint32_t *s = c->cur_words;
    while (c->cur < c->layer_end) {
        decode(c, c->key[c->cur], s);
        uint32_t sh = s[0];
        for (int q = 0; q < n; q++) {
            uint32_t x = s[q + 1];
            if (x >= c->pcount) { c->miss[0] = x; return R_MISS_PINFO; }
            rm[q] = c->arm ? c->presv[x] : 0;
        }
        uint32_t total = 0;
        uint32_t ri[MAXP];
        uint64_t resvs[MAXP];
        /* the n memo slots are fetched together (prefetch), then probed */
        static const mslot idle = {0, 0, 0, 0, 0};
        for (int i = 0; i < n; i++) {
            uint64_t resv = 0;
            ms[i] = NULL;
            if ((c->pquiet[s[i + 1]] >> (32 + i)) & 1) { ms[i] = &idle; continue; }  /* see chk_pinfo */
            if (c->arm) for (int q = 0; q < n; q++) if (q != i) resv |= rm[q];
            int32_t r = resv ? resv_id(c, resv) : 0;
            if (r < 0) return R_WIDE;
            resvs[i] = resv;
            ri[i] = ((uint32_t)r + 1) << 4 | i;
            __builtin_prefetch(&c->mt[mhash(ri[i], s[i + 1], sh) & c->mmask]);
        }
        for (int i = 0; i < n; i++) {
            uint64_t resv = resvs[i];
            if (ms[i] == &idle) continue;
            ms[i] = mfind(c, ri[i], s[i + 1], sh);
            if (!ms[i]) {  /* (misses in the order the Python loop meets them: ids alike) */
                c->miss[0] = i; c->miss[1] = s[i + 1]; c->miss[2] = sh;
                c->miss[3] = (uint32_t)resv; c->miss[4] = (uint32_t)(resv >> 32);
                gather(c, i);
                return R_MISS_MOVES;
            }
            total += ms[i]->cnt;
            for (uint32_t k = 0; k < ms[i]->cnt; k++) {
                const move *m = &c->mv[ms[i]->off + k];
                if (m->loc == 0xffffffffu) continue;
                for (int q = 0; q < n; q++) {
                    uint32_t y;
                    if (q == i) continue;
                    if (!cfind(c, q, s[q + 1], m->loc, m->old, &y)) {
                        c->miss[0] = q; c->miss[1] = s[q + 1]; c->miss[2] = m->loc; c->miss[3] = m->old;
                        return R_MISS_COMMIT;
                    }
                }
            }
        }
        /* the previous state's successors go in now: their slots were
           prefetched at its end, and the lookups above overlapped the misses */
        if (flush(c)) return R_NOMEM;
        if (c->count >= c->check_at) return R_CHECK;
        if (total == 0 && !(c->term_ack && c->term_at == c->cur)) {
            c->term_at = c->cur; c->term_ack = 0;
            return R_TERMINAL;
        }
        int quiet = 1;
        for (int q = 1; q < n; q++) if (!((c->pquiet[s[q + 1]] >> q) & 1)) { quiet = 0; break; }
        uint32_t me = (uint32_t)c->cur;
        if (quiet && total == 0 && add_edge(c, me, 0)) return R_NOMEM;  /* a quiescent end */
        /* every successor's key (re-packing first if an id outgrows its
           width), their table slots prefetched; inserted in order by the
           next flush, after the next state's lookups */
        if (total > c->kcap) {
            uint64_t nc = total * 2;
            uint64_t *kb = realloc(c->kbuf, nc * 8);
            if (!kb) return R_NOMEM;
            c->kbuf = kb;
            uint32_t *wb = realloc(c->wbuf, nc * W * 4);
            if (!wb) return R_NOMEM;
            c->wbuf = wb; c->kcap = nc;
        }
        uint32_t t = 0;
        int bad = 0;
        for (int i = 0; i < n; i++) {
            for (uint32_t k = 0; k < ms[i]->cnt; k++, t++) {
                const move *m = &c->mv[ms[i]->off + k];
                uint32_t *ns = c->wbuf + (uint64_t)t * W;
                memcpy(ns, s, W * sizeof(uint32_t));
                if (m->loc != 0xffffffffu)
                    for (int q = 0; q < n; q++) {
                        if (q == i) continue;
                        cfind(c, q, s[q + 1], m->loc, m->old, &ns[q + 1]);
                    }
                ns[0] = m->sh; ns[i + 1] = m->pid;
                if (m->bad) bad = 1;
            }
        }
        for (t = 0; t < total; t++) {
            const uint32_t *ns = c->wbuf + (uint64_t)t * W;
            int w = encode(c, ns, &c->kbuf[t]);
            if (w >= 0) {  /* widths change: encode them all again (nothing is pending) */
                int r = repack(c, w, ns[w]);
                if (r == -2) return R_WIDE;
                if (r) return R_NOMEM;
                t = (uint32_t)-1;
            }
        }
        for (t = 0; t < total; t++) __builtin_prefetch(&c->tab[mix(c->kbuf[t]) & c->tmask]);
        c->pend_n = total; c->pend_from = me; c->pend_quiet = quiet;
        c->transitions += total;
        c->cur++;
        if (bad) {  /* a double dispatch: this state's successors go in now, the search stops */
            if (flush(c)) return R_NOMEM;
            t = 0;
            for (int i = 0; i < n; i++)
                for (uint32_t k = 0; k < ms[i]->cnt; k++, t++) {
                    const move *m = &c->mv[ms[i]->off + k];
                    if (m->bad) { c->viol_key = c->kbuf[t]; c->viol_bad = m->bad; c->viol_from = me; return R_VIOLATION; }
                }
        }
    }
    if (flush(c)) return R_NOMEM;
    return R_LAYER;
}

/* The index of every edge's target and of the violation, from their keys:
   one pass over the states with a small table of the keys asked for. */
int chk_resolve(chk *c) {
    uint64_t want = c->ecount + 1, mask = 1;
    while (mask < want * 2) mask <<= 1;
    mask -= 1;
    uint64_t *ks = calloc(mask + 1, 8);
    uint32_t *ix = malloc((mask + 1) * 4);
    if (!ks || !ix) { free(ks); free(ix); return -1; }
    for (uint64_t e = 0; e < c->ecount; e++) if (c->edst[e]) tab_insert_key(ks, mask, c->edst[e]);
    if (c->viol_key) tab_insert_key(ks, mask, c->viol_key);
    for (uint64_t j = 0; j < c->count; j++) {
        uint64_t k = c->key[j], h = mix(k) & mask;
        while (ks[h]) { if (ks[h] == k) { ix[h] = (uint32_t)j; break; } h = (h + 1) & mask; }
    }
    for (uint64_t e = 0; e < c->ecount; e++) {
        uint64_t k = c->edst[e];
        if (!k) { c->edst[e] = 0xffffffffu; continue; }
        uint64_t h = mix(k) & mask;
        while (ks[h] != k) h = (h + 1) & mask;
        c->edst[e] = ix[h];
    }
    if (c->viol_key) {
        uint64_t h = mix(c->viol_key) & mask;
        while (ks[h] != c->viol_key) h = (h + 1) & mask;
        c->viol_idx = ix[h];
    }
    free(ks); free(ix);
    return 0;
}

uint64_t chk_count(chk *c) { return c->count; }
uint64_t chk_transitions(chk *c) { return c->transitions; }
uint64_t chk_layer_start(chk *c) { return c->layer_start; }
uint64_t chk_layer_end(chk *c) { return c->layer_end; }
uint64_t chk_current(chk *c) { return c->cur; }
uint64_t chk_bytes(chk *c) {
    return c->cap * 12 + (c->tmask + 1) * 8 + (c->mmask + 1) * sizeof(mslot)
        + c->mvcap * sizeof(move) + (c->cmask + 1) * sizeof(cslot) + c->ecap * 12;
}
void chk_state(chk *c, uint64_t idx, uint32_t *out) { decode(c, c->key[idx], out); }
uint32_t chk_parent(chk *c, uint64_t idx) { return c->parent[idx]; }
uint64_t chk_nedges(chk *c) { return c->ecount; }
const uint32_t *chk_edges_src(chk *c) { return c->esrc; }
const uint64_t *chk_edges_dst(chk *c) { return c->edst; }
void chk_miss(chk *c, uint32_t *out) { memcpy(out, c->miss, sizeof c->miss); }
/* The double dispatch: its target state, its explanation and the state it
   was made from (the target may have been reached before by a path without it). */
void chk_violation(chk *c, uint64_t *out) { out[0] = c->viol_idx; out[1] = c->viol_bad; out[2] = c->viol_from; }

/* The quiescent subgraph's lasso, as _search.find_cycle finds it (the same
   answer): after chk_resolve, the edges' sources are the quiescent states in
   increasing index, each one's edges together.  Peel off every state from
   which every path ends (Kahn); the lasso starts at the first state left
   (the shallowest, as indices follow the layers), and chk_cycle_next walks it. */
static int64_t cy_dense(const chk *c, uint32_t t) {
    uint64_t lo = 0, hi = c->cy_n;
    while (lo < hi) { uint64_t m = (lo + hi) / 2; if (c->cy_src[m] < t) lo = m + 1; else hi = m; }
    return lo < c->cy_n && c->cy_src[lo] == t ? (int64_t)lo : -1;
}

static int cy_seen(const chk *c, uint64_t from, uint64_t e) {  /* edge e's target earlier in its group */
    for (uint64_t f = from; f < e; f++) if (c->edst[f] == c->edst[e]) return 1;
    return 0;
}

int64_t chk_cycle_start(chk *c) {
    uint64_t ne = c->ecount, S = 0;
    free(c->cy_src); free(c->cy_group); free(c->cy_removed);
    c->cy_src = malloc((ne + 1) * 4); c->cy_group = malloc((ne + 2) * 8);
    if (!c->cy_src || !c->cy_group) return -2;
    for (uint64_t e = 0; e < ne; e++)
        if (e == 0 || c->esrc[e] != c->esrc[e - 1]) { c->cy_src[S] = c->esrc[e]; c->cy_group[S++] = e; }
    c->cy_group[S] = ne; c->cy_n = S;
    uint32_t *outdeg = calloc(S + 1, 4), *pstart = calloc(S + 2, 4), *preds = NULL, *stack = NULL;
    c->cy_removed = calloc(S + 1, 1);
    int64_t start = -2;
    if (!outdeg || !pstart || !c->cy_removed) goto out;
    for (int pass = 0; pass < 2; pass++) {   /* count, then fill the predecessors (unique edges) */
        for (uint64_t d = 0; d < S; d++)
            for (uint64_t e = c->cy_group[d]; e < c->cy_group[d + 1]; e++) {
                if (c->edst[e] == 0xffffffffu || cy_seen(c, c->cy_group[d], e)) continue;
                int64_t t = cy_dense(c, (uint32_t)c->edst[e]);
                if (pass == 0) { outdeg[d]++; if (t >= 0) pstart[t + 1]++; }
                else if (t >= 0) preds[pstart[t]++] = (uint32_t)d;
            }
        if (pass == 0) {
            for (uint64_t d = 0; d < S; d++) pstart[d + 1] += pstart[d];
            preds = malloc((pstart[S] + 1) * 4);
            if (!preds) goto out;
        }
    }
    for (uint64_t d = S; d > 0; d--) pstart[d] = pstart[d - 1];  /* back to the starts */
    pstart[0] = 0;
    stack = malloc((S + 1) * 4);
    if (!stack) goto out;
    uint64_t top = 0;
    for (uint64_t d = 0; d < S; d++) if (!outdeg[d]) stack[top++] = (uint32_t)d;
    while (top) {
        uint32_t d = stack[--top];
        c->cy_removed[d] = 1;
        for (uint32_t k = pstart[d]; k < pstart[d + 1]; k++) if (--outdeg[preds[k]] == 0) stack[top++] = preds[k];
    }
    start = -1;
    for (uint64_t d = 0; d < S; d++) if (!c->cy_removed[d]) { start = c->cy_src[d]; break; }
out:
    free(outdeg); free(pstart); free(preds); free(stack);
    return start;
}

/* the first target of quiescent state s, in its edges' order, that chk_cycle_start left */
uint32_t chk_cycle_next(chk *c, uint32_t s) {
    int64_t d = cy_dense(c, s);
    if (d < 0) return 0xffffffffu;
    for (uint64_t e = c->cy_group[d]; e < c->cy_group[d + 1]; e++) {
        if (c->edst[e] == 0xffffffffu) continue;
        int64_t t = cy_dense(c, (uint32_t)c->edst[e]);
        if (t >= 0 && !c->cy_removed[t]) return (uint32_t)c->edst[e];
    }
    return 0xffffffffu;
}
