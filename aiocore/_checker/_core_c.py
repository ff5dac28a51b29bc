# The C half of the search (_fast.py is the Python half): the breadth-first
# loop over packed states, the visited set, the parent of every state and
# the memo tables -- but no semantics.  What a process can do is still
# computed by the Explorer in Python (_explore.py, the one definition of the
# memory models); C only replays what Python computed, keyed exactly as the
# Explorer's own memo tables are keyed:
#
#   moves   (process i, its interned id, the shared id, the locations other
#           processes hold reserved by an RMW in flight, as a bit mask) ->
#           [(shared id', process id', committed location, old value, bad)]
#   commit  (process q, its id, location, old value) -> its id once a store
#           of another process to that location became visible (arm: the
#           stale value it may still read)
#   pinfo   per interned process id: its reserved locations (arm) and, per
#           process index, whether it is finished with an empty buffer
#
# When a lookup misses, run() returns to Python with the key, Python fills
# the entry and calls run() again, which restarts the same state (nothing is
# written before every lookup of a state succeeded).  So the states, their
# order, the parent of each state -- and therefore every verdict and every
# counterexample -- are those of the Python loop in _search.py, which stays
# the reference (tests compare the two).
#
# A state is W = 1 + n ids (shared id, process ids...), packed into one 64-bit
# key (each position as wide as its largest id needs; when an id outgrows its
# width every key is re-packed).  Keys are stored once, in discovery order
# (index = BFS order), with the parent's index; the visited set is an
# open-addressing table of the keys themselves, so a lookup touches one
# cache line.  Programs whose ids need more than 63 bits in all stop with
# R_WIDE and the Python loop takes over.
CDEF = r"""
typedef struct chk chk;
chk *chk_new(int n, int arm);
void chk_free(chk *c);
int chk_add_initial(chk *c, const uint32_t *state);
int chk_run(chk *c);
void chk_next_layer(chk *c);
void chk_pinfo(chk *c, uint32_t pid, uint64_t resv, uint64_t quiet);
int chk_moves(chk *c, uint32_t i, uint32_t x, uint32_t sh, uint64_t resv, uint32_t n,
              const uint32_t *moves);
int chk_commit(chk *c, uint32_t q, uint32_t x, uint32_t loc, uint32_t old, uint32_t y);
void chk_ack_terminal(chk *c);
int chk_narrow(chk *c, int bits);
void chk_set_check_at(chk *c, uint64_t at);
uint64_t chk_count(chk *c);
uint64_t chk_transitions(chk *c);
uint64_t chk_layer_start(chk *c);
uint64_t chk_layer_end(chk *c);
uint64_t chk_bytes(chk *c);
void chk_state(chk *c, uint64_t idx, uint32_t *out);
uint32_t chk_parent(chk *c, uint64_t idx);
uint64_t chk_current(chk *c);
uint64_t chk_nedges(chk *c);
const uint32_t *chk_edges_src(chk *c);
const uint64_t *chk_edges_dst(chk *c);
int chk_resolve(chk *c);
void chk_miss(chk *c, uint32_t *out);
void chk_violation(chk *c, uint64_t *out);
"""

SOURCE = r"""
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
    uint64_t viol_key, viol_idx, viol_bad;
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
        for (int i = 0; i < n; i++) {
            uint64_t resv = 0;
            if (c->arm) for (int q = 0; q < n; q++) if (q != i) resv |= rm[q];
            int32_t r = resv ? resv_id(c, resv) : 0;
            if (r < 0) return R_WIDE;
            resvs[i] = resv;
            ri[i] = ((uint32_t)r + 1) << 4 | i;
            __builtin_prefetch(&c->mt[mhash(ri[i], s[i + 1], sh) & c->mmask]);
        }
        for (int i = 0; i < n; i++) {
            uint64_t resv = resvs[i];
            ms[i] = mfind(c, ri[i], s[i + 1], sh);
            if (!ms[i]) {  /* (misses in the order the Python loop meets them: ids alike) */
                c->miss[0] = i; c->miss[1] = s[i + 1]; c->miss[2] = sh;
                c->miss[3] = (uint32_t)resv; c->miss[4] = (uint32_t)(resv >> 32);
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
                    if (m->bad) { c->viol_key = c->kbuf[t]; c->viol_bad = m->bad; return R_VIOLATION; }
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
void chk_violation(chk *c, uint64_t *out) { out[0] = c->viol_idx; out[1] = c->viol_bad; }
"""
