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
# When a lookup misses, run() returns to Python with the key (and those of
# the misses of the states just after it, in order: chk_batch), Python fills
# the entries and calls run() again, which restarts the same state (nothing is
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
from pathlib import Path

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
uint32_t chk_batch(chk *c, uint32_t *out);
int64_t chk_cycle_start(chk *c);
uint32_t chk_cycle_next(chk *c, uint32_t s);
void chk_violation(chk *c, uint64_t *out);
"""

#: The C itself, in two files beside this one: chk_store.c (keys, visited
#: set, parents, memo tables) and chk_search.c (the loop, edges, accessors),
#: compiled as one translation unit in that order.
SOURCE_FILES = ("chk_store.c", "chk_search.c")
SOURCE = "".join((Path(__file__).resolve().parent / f).read_text() for f in SOURCE_FILES)
