/*
 * chk_store.c -- the C search loop's memory (see _core_c.py for the design):
 * packed state keys, the visited set and the parent of every state, and the
 * memo tables the Explorer fills (moves, commits, per-process info).
 *
 * Compiled together with chk_search.c (this file first) into one cffi module
 * by _fast.py; no semantics here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { R_LAYER = 0, R_MISS_MOVES = 1, R_MISS_COMMIT = 2, R_MISS_PINFO = 3, R_TERMINAL = 4,
       R_VIOLATION = 5, R_CHECK = 6, R_NOMEM = 7, R_WIDE = 8 };

typedef struct chk chk;
void chk_free(chk *c);
#define MAXP 16
#define MAXMV 4096

typedef struct { uint32_t sh, pid, loc, old, bad; } move;   /* loc = 0xffffffff: no commit */
/* memo slots, kept small (they are looked up n times per state): the moves of
   (process i, id x, shared id sh, reservations as a small id r) and the id y
   of process q (id x) once a store to loc that overwrote `old` is visible;
   ri = (r + 1) << 4 | i and qloc = (loc + 1) << 4 | q are never 0 in a used slot */
typedef struct { uint32_t x, sh, ri, off, cnt; } mslot;
typedef struct { uint32_t x, old, qloc, y; } cslot;

struct chk {
    int n, W, arm;
    /* states, in discovery order, packed into one word each (see encode) */
    uint64_t *key; uint64_t cap, count;
    uint32_t *parent;
    uint64_t *tab; uint64_t tmask;            /* the visited set: packed keys, 0 = empty */
    int bits[MAXP + 1], shift[MAXP + 1];
    uint32_t maxseen[MAXP + 1];
    mslot *mt; uint64_t mmask, mcount;
    uint64_t resv_masks[4096]; uint32_t nresv;     /* the distinct reservation masks */
    move *mv; uint64_t mvcap, mvcount;
    cslot *ct; uint64_t cmask, ccount;
    uint64_t *presv, *pquiet; uint64_t pcap, pcount;
    uint64_t cur, layer_start, layer_end, transitions, check_at;
    uint32_t *esrc; uint64_t *edst; uint64_t ecap, ecount;   /* quiescent edges: (index, key) */
    int term_ack; uint64_t term_at;
    uint32_t miss[6];
    uint32_t batch[5 * 256]; uint32_t nbatch;  /* the misses gathered ahead (chk_search.c) */
    uint32_t *cy_src; uint64_t *cy_group; uint8_t *cy_removed; uint64_t cy_n;  /* chk_cycle_start */
    uint64_t viol_key, viol_idx, viol_bad, viol_from;
    uint32_t cur_words[MAXP + 1];
    uint64_t *kbuf; uint32_t *wbuf; uint64_t kcap;   /* one state's successors */
    uint32_t pend_n, pend_from; int pend_quiet;       /* ... still to be inserted */
};

static uint64_t mix(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33; return h;
}

/* A state's W ids packed into 63 bits (bit 63 set, so that 0 means "empty");
   the width of each position grows when an id outgrows it (repack). */
static int encode(const chk *c, const uint32_t *s, uint64_t *out) {
    uint64_t k = 1ULL << 63;
    for (int w = 0; w < c->W; w++) {
        if (c->bits[w] < 32 && (s[w] >> c->bits[w])) return w;
        k |= (uint64_t)s[w] << c->shift[w];
    }
    *out = k;
    return -1;
}

static void decode(const chk *c, uint64_t k, uint32_t *s) {
    for (int w = 0; w < c->W; w++) s[w] = (uint32_t)((k >> c->shift[w]) & ((1ULL << c->bits[w]) - 1));
}

static void set_shifts(chk *c) {
    int sh = 0;
    for (int w = 0; w < c->W; w++) { c->shift[w] = sh; sh += c->bits[w]; }
}

static int bitlen(uint32_t v) { int b = 0; while (v) { b++; v >>= 1; } return b; }

static int tab_insert_key(uint64_t *t, uint64_t mask, uint64_t k) {
    uint64_t h = mix(k) & mask;
    while (t[h]) h = (h + 1) & mask;
    t[h] = k;
    return 0;
}

/* The visited table is the one structure read at random (a probe per
   successor), 128 MiB at 3 x 3 and 1 GiB at 4 x 2: it is mapped on its own
   and asked for transparent huge pages (this kernel's THP mode is madvise),
   so that a probe costs a cache miss and not also a page walk.  Anonymous
   mappings read as zeros, as calloc's memory does. */
static uint64_t *tab_alloc(uint64_t nslots) {
    size_t len = nslots * sizeof(uint64_t);
    if (len < (4u << 20)) return calloc(nslots, sizeof(uint64_t));
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

static void tab_free(uint64_t *t, uint64_t nslots) {
    size_t len = nslots * sizeof(uint64_t);
    if (!t) return;
    if (len < (4u << 20)) free(t);
    else munmap(t, len);
}

static int rebuild_tab(chk *c, uint64_t nm) {
    /* the table is rebuilt from the keys, so the old one goes first: the
       peak is the new table, not both */
    tab_free(c->tab, c->tmask + 1);
    c->tab = NULL;
    uint64_t *t = tab_alloc(nm + 1);
    if (!t) return -1;
    for (uint64_t j = 0; j < c->count; j++) tab_insert_key(t, nm, c->key[j]);
    c->tab = t; c->tmask = nm;
    return 0;
}

/* position w must hold v: new widths, every stored key re-packed; -2 if 63 bits cannot */
static int repack(chk *c, int w, uint32_t v) {
    int need[MAXP + 1], total = 0, old_bits[MAXP + 1], old_shift[MAXP + 1];
    for (int q = 0; q < c->W; q++) {
        need[q] = bitlen(c->maxseen[q]);
        if (need[q] < 1) need[q] = 1;
    }
    need[w] = bitlen(v) + 1;
    for (int q = 0; q < c->W; q++) total += need[q];
    if (total > 63) return -2;
    int spare = 63 - total;
    for (int q = 0; spare > 0; q = (q + 1) % c->W) { need[q]++; spare--; }
    memcpy(old_bits, c->bits, sizeof old_bits); memcpy(old_shift, c->shift, sizeof old_shift);
    uint32_t tmp[MAXP + 1];
    chk o = *c;
    memcpy(c->bits, need, sizeof need);
    set_shifts(c);
    for (uint64_t j = 0; j < c->count; j++) {
        memcpy(o.bits, old_bits, sizeof old_bits); memcpy(o.shift, old_shift, sizeof old_shift);
        decode(&o, c->key[j], tmp);
        uint64_t k;
        encode(c, tmp, &k);
        c->key[j] = k;
    }
    for (uint64_t e = 0; e < c->ecount; e++) {
        if (!c->edst[e]) continue;
        decode(&o, c->edst[e], tmp);
        encode(c, tmp, &c->edst[e]);
    }
    if (c->viol_key) { decode(&o, c->viol_key, tmp); encode(c, tmp, &c->viol_key); }
    return rebuild_tab(c, c->tmask);
}

chk *chk_new(int n, int arm) {
    if (n < 1 || n > MAXP) return NULL;
    chk *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n = n; c->W = n + 1; c->arm = arm;
    for (int w = 0; w < c->W; w++) c->bits[w] = 63 / c->W;
    set_shifts(c);
    c->cap = 1024;
    c->key = malloc(c->cap * sizeof(uint64_t));
    c->parent = malloc(c->cap * sizeof(uint32_t));
    c->tmask = 2047; c->tab = tab_alloc(c->tmask + 1);
    c->mmask = 1023; c->mt = calloc(c->mmask + 1, sizeof(mslot));
    c->mvcap = 4096; c->mv = malloc(c->mvcap * sizeof(move));
    c->cmask = 255; c->ct = calloc(c->cmask + 1, sizeof(cslot));
    c->pcap = 1024; c->presv = calloc(c->pcap, 8); c->pquiet = calloc(c->pcap, 8);
    c->ecap = 1024; c->esrc = malloc(c->ecap * sizeof(uint32_t)); c->edst = malloc(c->ecap * 8);
    c->check_at = UINT64_MAX;
    c->term_at = UINT64_MAX;
    c->resv_masks[0] = 0; c->nresv = 1;  /* id 0: nothing reserved */
    if (!c->key || !c->parent || !c->tab || !c->mt || !c->mv || !c->ct || !c->presv
        || !c->pquiet || !c->esrc || !c->edst) { chk_free(c); return NULL; }
    return c;
}

void chk_free(chk *c) {
    if (!c) return;
    free(c->key); free(c->parent); tab_free(c->tab, c->tmask + 1); free(c->mt); free(c->mv); free(c->ct);
    free(c->cy_src); free(c->cy_group); free(c->cy_removed);
    free(c->presv); free(c->pquiet); free(c->esrc); free(c->edst); free(c->kbuf); free(c->wbuf); free(c);
}

/* insert key k of state s (parent p) if new: 1 new, 0 known, -1 out of memory */
static int insert_key(chk *c, uint64_t k, const uint32_t *s, uint32_t p) {
    uint64_t h = mix(k) & c->tmask;
    for (;;) {
        uint64_t e = c->tab[h];
        if (!e) break;
        if (e == k) return 0;
        h = (h + 1) & c->tmask;
    }
    if (c->count >= 0xfffffff0ULL) return -1;
    if (c->count == c->cap) {
        uint64_t nc = c->cap + c->cap / 2;
        uint64_t *ks = realloc(c->key, nc * sizeof(uint64_t));
        if (!ks) return -1;
        c->key = ks;
        uint32_t *pa = realloc(c->parent, nc * sizeof(uint32_t));
        if (!pa) return -1;
        c->parent = pa; c->cap = nc;
    }
    uint64_t j = c->count++;
    c->key[j] = k;
    c->parent[j] = p;
    c->tab[h] = k;
    for (int q = 0; q < c->W; q++) if (s[q] > c->maxseen[q]) c->maxseen[q] = s[q];
    /* linear probing stays short up to ~0.7 full with this hash: a table of
       2^k slots holds at most 0.7 * 2^k keys */
    if (c->count * 10 > (c->tmask + 1) * 7) { if (rebuild_tab(c, c->tmask * 2 + 1)) return -1; }
    return 1;
}

/* insert s (parent p) if new: 1 new, 0 known, -1 out of memory, -2 too wide */
static int insert(chk *c, const uint32_t *s, uint32_t p, uint64_t *kout) {
    uint64_t k;
    int w;
    while ((w = encode(c, s, &k)) >= 0) {
        int r = repack(c, w, s[w]);
        if (r) return r;
    }
    *kout = k;
    return insert_key(c, k, s, p);
}

int chk_add_initial(chk *c, const uint32_t *state) {
    uint64_t k;
    if (insert(c, state, 0xffffffffu, &k) < 0) return -1;
    c->layer_start = 0; c->layer_end = c->count; c->cur = 0;
    return 0;
}

void chk_next_layer(chk *c) { c->layer_start = c->layer_end; c->layer_end = c->count; }

/* per process tuple: the locations it holds reserved; `quiet` bit q (q < 16):
   finished for process q (the quiescence of _explore.quiescent); bit 32 + q:
   idle as process q -- no move whatever the shared part (no memo lookup) */
void chk_pinfo(chk *c, uint32_t pid, uint64_t resv, uint64_t quiet) {
    if (pid >= c->pcap) {
        uint64_t nc = c->pcap;
        while (nc <= pid) nc *= 2;
        uint64_t *a = realloc(c->presv, nc * 8), *b;
        if (!a) return;
        c->presv = a;
        b = realloc(c->pquiet, nc * 8);
        if (!b) return;
        c->pquiet = b;
        memset(c->presv + c->pcap, 0, (nc - c->pcap) * 8);
        memset(c->pquiet + c->pcap, 0, (nc - c->pcap) * 8);
        c->pcap = nc;
    }
    c->presv[pid] = resv; c->pquiet[pid] = quiet;
    if (pid >= c->pcount) c->pcount = pid + 1;
}

/* the small id of a reservation mask (new ones appended); -1 beyond 4095 */
static int32_t resv_id(chk *c, uint64_t resv) {
    for (uint32_t k = 0; k < c->nresv; k++) if (c->resv_masks[k] == resv) return (int32_t)k;
    if (c->nresv >= 4095) return -1;
    c->resv_masks[c->nresv] = resv;
    return (int32_t)c->nresv++;
}

static uint64_t mhash(uint32_t ri, uint32_t x, uint32_t sh) {
    return mix(((uint64_t)x << 32 ^ sh) + ri * 0x9e3779b97f4a7c15ULL);
}

static const mslot *mfind(chk *c, uint32_t ri, uint32_t x, uint32_t sh) {
    uint64_t h = mhash(ri, x, sh) & c->mmask;
    for (;;) {
        const mslot *m = &c->mt[h];
        if (!m->ri) return NULL;
        if (m->ri == ri && m->x == x && m->sh == sh) return m;
        h = (h + 1) & c->mmask;
    }
}

static int mput(chk *c, uint32_t ri, uint32_t x, uint32_t sh, uint32_t off, uint32_t cnt) {
    if ((c->mcount + 1) * 2 > c->mmask) {
        uint64_t nm = c->mmask * 2 + 1;
        mslot *t = calloc(nm + 1, sizeof(mslot));
        if (!t) return -1;
        for (uint64_t k = 0; k <= c->mmask; k++) {
            mslot *m = &c->mt[k];
            if (!m->ri) continue;
            uint64_t h = mhash(m->ri, m->x, m->sh) & nm;
            while (t[h].ri) h = (h + 1) & nm;
            t[h] = *m;
        }
        free(c->mt); c->mt = t; c->mmask = nm;
    }
    uint64_t h = mhash(ri, x, sh) & c->mmask;
    while (c->mt[h].ri) h = (h + 1) & c->mmask;
    mslot *m = &c->mt[h];
    m->ri = ri; m->x = x; m->sh = sh; m->off = off; m->cnt = cnt;
    c->mcount++;
    return 0;
}

int chk_moves(chk *c, uint32_t i, uint32_t x, uint32_t sh, uint64_t resv, uint32_t n,
              const uint32_t *moves) {
    if (n > MAXMV) return -2;
    while (c->mvcount + n > c->mvcap) {
        move *m = realloc(c->mv, c->mvcap * 2 * sizeof(move));
        if (!m) return -1;
        c->mv = m; c->mvcap *= 2;
    }
    uint32_t off = (uint32_t)c->mvcount;
    for (uint32_t k = 0; k < n; k++) {
        move *m = &c->mv[off + k];
        m->sh = moves[5 * k]; m->pid = moves[5 * k + 1]; m->loc = moves[5 * k + 2];
        m->old = moves[5 * k + 3]; m->bad = moves[5 * k + 4];
    }
    c->mvcount += n;
    int32_t r = resv_id(c, resv);
    if (r < 0) return -2;
    return mput(c, ((uint32_t)r + 1) << 4 | i, x, sh, off, n);
}

static uint64_t chash(uint32_t qloc, uint32_t x, uint32_t old) {
    return mix(((uint64_t)x << 32 ^ old) + qloc * 0x9e3779b97f4a7c15ULL);
}

static int cfind(chk *c, uint32_t q, uint32_t x, uint32_t loc, uint32_t old, uint32_t *y) {
    uint32_t qloc = (loc + 1) << 4 | q;
    uint64_t h = chash(qloc, x, old) & c->cmask;
    for (;;) {
        const cslot *e = &c->ct[h];
        if (!e->qloc) return 0;
        if (e->qloc == qloc && e->x == x && e->old == old) { *y = e->y; return 1; }
        h = (h + 1) & c->cmask;
    }
}

int chk_commit(chk *c, uint32_t q, uint32_t x, uint32_t loc, uint32_t old, uint32_t y) {
    if ((c->ccount + 1) * 2 > c->cmask) {
        uint64_t nm = c->cmask * 2 + 1;
        cslot *t = calloc(nm + 1, sizeof(cslot));
        if (!t) return -1;
        for (uint64_t k = 0; k <= c->cmask; k++) {
            cslot *e = &c->ct[k];
            if (!e->qloc) continue;
            uint64_t h = chash(e->qloc, e->x, e->old) & nm;
            while (t[h].qloc) h = (h + 1) & nm;
            t[h] = *e;
        }
        free(c->ct); c->ct = t; c->cmask = nm;
    }
    uint32_t qloc = (loc + 1) << 4 | q;
    uint64_t h = chash(qloc, x, old) & c->cmask;
    while (c->ct[h].qloc) h = (h + 1) & c->cmask;
    cslot *e = &c->ct[h];
    e->qloc = qloc; e->x = x; e->old = old; e->y = y;
    c->ccount++;
    return 0;
}

void chk_ack_terminal(chk *c) { c->term_ack = 1; }

/* tests: start every position `bits` wide (before the first state), so that
   the ids outgrow them and the keys are re-packed many times */
int chk_narrow(chk *c, int bits) {
    if (c->count || bits < 1 || bits * c->W > 63) return -1;
    for (int w = 0; w < c->W; w++) c->bits[w] = bits;
    set_shifts(c);
    return 0;
}
void chk_set_check_at(chk *c, uint64_t at) { c->check_at = at; }
