/* Compiled kernels of the clean stage's per-document attributes (optional: attributes.py has the
 * reference implementation in Python and uses these only when the extension is built; the tests hold
 * both to the same results).
 *
 * Both functions take UTF-8 bytes and follow Python's str semantics exactly for the text they accept:
 * whitespace is what str.split() / str.isspace() treat as whitespace (Py_UNICODE_ISSPACE), lengths are
 * counted in code points, words are maximal runs of non-whitespace characters.
 *
 *   word_stats(bare, raw, sep) -> (n_words, word_chars, digit_words, stopwords, long_lines, n_tokens,
 *                                  top2, top3, top4, dup5, ..., dup10)
 *     bare: the document without symbols (lines split on "\n" only); raw: the document itself, whose
 *     whitespace tokens are counted (n_tokens). digit_words counts words of ASCII digits only (the
 *     caller routes text with other digits to Python). top/dup: Gopher repetition characters, as
 *     repetition.ngram_chars.
 *
 *   line_stats(text) -> (n_lines, bullet_lines, ellipsis_lines, terminal_lines, max_line_len,
 *                        dup_lines, dup_line_chars, n_paras, dup_paras, dup_para_chars)
 *     as attributes.compute derives them from text.split("\n") and the paragraphs (blank-line runs).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char u8;

/* Bytes of the whitespace character at s (0: not whitespace). */
static inline int ws_len(const u8 *s, const u8 *end) {
    u8 c = s[0];
    if (c < 0x80) return (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) ? 1 : 0;
    if (c == 0xC2 && s + 1 < end) return (s[1] == 0x85 || s[1] == 0xA0) ? 2 : 0;
    if (s + 2 >= end) return 0;
    if (c == 0xE1) return (s[1] == 0x9A && s[2] == 0x80) ? 3 : 0;                    /* U+1680 */
    if (c == 0xE2) {
        if (s[1] == 0x80) return ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 ||
                                  s[2] == 0xAF) ? 3 : 0;                              /* U+2000..200A, 2028, 2029, 202F */
        if (s[1] == 0x81) return s[2] == 0x9F ? 3 : 0;                                /* U+205F */
        return 0;
    }
    if (c == 0xE3) return (s[1] == 0x80 && s[2] == 0x80) ? 3 : 0;                    /* U+3000 */
    return 0;
}

static inline int is_cont(u8 c) { return (c & 0xC0) == 0x80; }

/* Byte classes: 0 part of a word, 1 ASCII whitespace other than "\n", 2 "\n", 3 the lead byte of a
 * character that may be whitespace (ws_len decides). */
static u8 CLS[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        u8 b = (u8)c;
        CLS[c] = c == '\n' ? 2 : (c < 0x80 && ws_len(&b, &b + 1)) ? 1 :
                 (c == 0xC2 || c == 0xE1 || c == 0xE2 || c == 0xE3) ? 3 : 0;
    }
}

/* The end of the word starting at p (a byte that is not whitespace). */
static inline const u8 *word_end(const u8 *p, const u8 *end) {
    while (p < end) {
        u8 k = CLS[*p];
        if (k == 0 || (k == 3 && !ws_len(p, end))) p++;
        else break;
    }
    return p;
}

/* The length in bytes of the whitespace character at p (0: none), by the byte classes. */
static inline int space_at(const u8 *p, const u8 *end) {
    u8 k = CLS[*p];
    return k == 0 ? 0 : k < 3 ? 1 : ws_len(p, end);
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const u8 *s, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t w; memcpy(&w, s + i, 8); h = mix64(h ^ w); }
    uint64_t w = 0;
    for (Py_ssize_t k = 0; i < n; i++, k++) w |= (uint64_t)s[i] << (8 * k);
    return mix64(h ^ w);
}

static Py_ssize_t pow2_at_least(Py_ssize_t n) { Py_ssize_t c = 16; while (c < n) c <<= 1; return c; }

/* ---- a table of byte strings -> dense ids (first come, first numbered) -------------------------- */
typedef struct { Py_ssize_t cap, n; int32_t *slot; uint64_t *hash; const u8 **ptr; Py_ssize_t *len; } StrTable;

static int strtab_init(StrTable *t, Py_ssize_t max_items) {
    t->cap = pow2_at_least(2 * max_items + 1); t->n = 0;
    t->slot = malloc(t->cap * sizeof(int32_t));
    t->hash = malloc((max_items + 1) * sizeof(uint64_t));
    t->ptr = malloc((max_items + 1) * sizeof(u8 *));
    t->len = malloc((max_items + 1) * sizeof(Py_ssize_t));
    if (!t->slot || !t->hash || !t->ptr || !t->len) return -1;
    memset(t->slot, 0xff, t->cap * sizeof(int32_t));
    return 0;
}
static void strtab_free(StrTable *t) { free(t->slot); free(t->hash); free(t->ptr); free(t->len); }

/* The id of s[0:n]; *fresh = 1 when it was not there before. */
static int32_t strtab_id(StrTable *t, const u8 *s, Py_ssize_t n, int *fresh) {
    uint64_t h = hash_bytes(s, n);
    Py_ssize_t mask = t->cap - 1, i = (Py_ssize_t)(h & mask);
    for (;;) {
        int32_t id = t->slot[i];
        if (id < 0) break;
        if (t->hash[id] == h && t->len[id] == n && memcmp(t->ptr[id], s, n) == 0) { *fresh = 0; return id; }
        i = (i + 1) & mask;
    }
    int32_t id = (int32_t)t->n++;
    t->slot[i] = id; t->hash[id] = h; t->ptr[id] = s; t->len[id] = n;
    *fresh = 1;
    return id;
}

/* ---- a table of uint64 keys -> dense ids ---------------------------------------------------------- */
typedef struct { Py_ssize_t cap, n; int32_t *slot; uint64_t *key; } KeyTable;

static int keytab_init(KeyTable *t, Py_ssize_t max_items) {
    t->cap = pow2_at_least(2 * max_items + 1); t->n = 0;
    t->slot = malloc(t->cap * sizeof(int32_t));
    t->key = malloc((max_items + 1) * sizeof(uint64_t));
    if (!t->slot || !t->key) return -1;
    memset(t->slot, 0xff, t->cap * sizeof(int32_t));
    return 0;
}
static void keytab_reset(KeyTable *t, Py_ssize_t max_items) {
    Py_ssize_t cap = pow2_at_least(2 * max_items + 1);
    if (cap < t->cap) t->cap = cap;  /* a smaller table fits in what was allocated */
    t->n = 0;
    memset(t->slot, 0xff, t->cap * sizeof(int32_t));
}
static void keytab_free(KeyTable *t) { free(t->slot); free(t->key); }

static inline int32_t keytab_id(KeyTable *t, uint64_t key) {
    Py_ssize_t mask = t->cap - 1, i = (Py_ssize_t)(mix64(key) & mask);
    for (;;) {
        int32_t id = t->slot[i];
        if (id < 0) break;
        if (t->key[id] == key) return id;
        i = (i + 1) & mask;
    }
    int32_t id = (int32_t)t->n++;
    t->slot[i] = id; t->key[id] = key;
    return id;
}

/* ---- word_stats ------------------------------------------------------------------------------------ */
static const char *STOPWORDS[8] = {"the", "be", "to", "of", "and", "that", "have", "with"};

static int stopword_bit(const u8 *s, Py_ssize_t n) {
    if (n < 2 || n > 4) return -1;
    for (int k = 0; k < 8; k++) {
        const char *w = STOPWORDS[k];
        if ((Py_ssize_t)strlen(w) != n) continue;
        Py_ssize_t i = 0;
        for (; i < n; i++) {
            u8 c = s[i];
            if (c >= 'A' && c <= 'Z') c += 32;
            if (c != (u8)w[i]) break;
        }
        if (i == n) return k;
    }
    return -1;
}

static Py_ssize_t count_tokens(const u8 *s, Py_ssize_t n) {
    const u8 *p = s, *end = s + n;
    Py_ssize_t tokens = 0;
    while (p < end) {
        int w = space_at(p, end);
        if (w) { p += w; continue; }
        tokens++;
        p = word_end(p, end);
    }
    return tokens;
}

#define N_TOP 3   /* n = 2, 3, 4 */
#define N_DUP 6   /* n = 5 .. 10 */
#define MAX_N 10

static PyObject *word_stats(PyObject *self, PyObject *args) {
    Py_buffer bare, raw;
    int sep;
    if (!PyArg_ParseTuple(args, "y*y*i", &bare, &raw, &sep)) return NULL;
    const u8 *s = bare.buf, *end = s + bare.len;
    Py_ssize_t max_words = bare.len / 2 + 1;
    int32_t *wid = malloc(max_words * sizeof(int32_t));
    int32_t *wlen = malloc(max_words * sizeof(int32_t));
    int32_t *wcount = malloc(max_words * sizeof(int32_t));
    Py_ssize_t *cum = malloc((max_words + 1) * sizeof(Py_ssize_t));
    int32_t *pos = malloc(max_words * sizeof(int32_t)), *ids = malloc(max_words * sizeof(int32_t));
    int32_t *cnt = malloc((max_words + 1) * sizeof(int32_t));
    u8 *seen = malloc(max_words + 1);
    StrTable words = {0};
    KeyTable grams = {0};
    PyObject *result = NULL;
    if (!wid || !wlen || !wcount || !cum || !pos || !ids || !cnt || !seen ||
        strtab_init(&words, max_words) || keytab_init(&grams, max_words)) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_words = 0, word_chars = 0, digit_words = 0, long_lines = 0, line_words = 0;
    unsigned stop_mask = 0;
    const u8 *p = s;
    while (p <= end) {
        if (p == end || *p == '\n') {  /* end of a line */
            long_lines += line_words >= 3;
            line_words = 0;
            p++;
            continue;
        }
        int w = space_at(p, end);
        if (w) { p += w; continue; }
        const u8 *start = p;
        p = word_end(p, end);
        Py_ssize_t chars = p - start;
        int digits = 1;
        for (const u8 *q = start; q < p; q++) {
            chars -= is_cont(*q);
            digits &= (*q >= '0' && *q <= '9');
        }
        int fresh;
        int32_t id = strtab_id(&words, start, p - start, &fresh);
        if (fresh) {
            wcount[id] = 0;
            int bit = stopword_bit(start, p - start);
            if (bit >= 0) stop_mask |= 1u << bit;
        }
        wcount[id]++;
        wid[n_words] = id;
        wlen[n_words] = (int32_t)chars;
        cum[n_words] = word_chars;
        n_words++;
        word_chars += chars;
        digit_words += digits;
        line_words++;
    }
    cum[n_words] = word_chars;

    Py_ssize_t top[N_TOP] = {0}, dup[N_DUP] = {0};
    /* Positions whose n-gram may repeat (all others occur once), their n-gram ids and id counts. */
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i + 1 < n_words; i++)
        if (wcount[wid[i]] >= 2) { pos[m] = (int32_t)i; ids[m] = wid[i]; m++; }
    for (int n = 2; n <= MAX_N && n_words >= n; n++) {
        /* extend each (n-1)-gram that repeats by one word; drop positions whose n-gram leaves the doc */
        keytab_reset(&grams, m);
        Py_ssize_t k = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            int32_t q = pos[j];
            if (q + n > n_words) break;  /* positions ascend */
            if (n > 2 && cnt[ids[j]] < 2) continue;
            pos[k] = q;
            ids[k] = keytab_id(&grams, ((uint64_t)(uint32_t)ids[j] << 32) | (uint32_t)wid[q + n - 1]);
            k++;
        }
        m = k;
        memset(cnt, 0, grams.n * sizeof(int32_t));
        int32_t best = 1;
        for (Py_ssize_t j = 0; j < m; j++) { int32_t c = ++cnt[ids[j]]; if (c > best) best = c; }
        if (n <= 4) {
            Py_ssize_t first = 0;
            if (best > 1)
                for (Py_ssize_t j = 0; j < m; j++) if (cnt[ids[j]] == best) { first = pos[j]; break; }
            top[n - 2] = (cum[first + n] - cum[first] + (Py_ssize_t)sep * (n - 1)) * best;
        } else {
            if (best < 2) break;  /* no n-gram repeats: no longer one does */
            memset(seen, 0, grams.n);
            Py_ssize_t resume = 0, chars = 0;
            for (Py_ssize_t j = 0; j < m; j++) {
                int32_t q = pos[j], g = ids[j];
                if (cnt[g] < 2 || q < resume) continue;
                if (seen[g]) { chars += cum[q + n] - cum[q]; resume = q + n; }
                else seen[g] = 1;
            }
            dup[n - 5] = chars;
        }
        if (best < 2 && n >= 4) break;  /* nothing repeats from here on: top is done, dup stays 0 */
    }
    int stopwords = __builtin_popcount(stop_mask);
    result = Py_BuildValue("nnninnnnnnnnnnn", n_words, word_chars, digit_words, stopwords, long_lines,
                           count_tokens(raw.buf, raw.len), top[0], top[1], top[2],
                           dup[0], dup[1], dup[2], dup[3], dup[4], dup[5]);
done:
    free(wid); free(wlen); free(wcount); free(cum); free(pos); free(ids); free(cnt); free(seen);
    strtab_free(&words); keytab_free(&grams);
    PyBuffer_Release(&bare); PyBuffer_Release(&raw);
    return result;
}

/* ---- line_stats ------------------------------------------------------------------------------------ */
static int ends_with(const u8 *s, Py_ssize_t n, const char *suffix) {
    Py_ssize_t k = (Py_ssize_t)strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *TERMINAL[] = {".", "!", "?", "\"", "'", "\xe3\x80\x82", "\xef\xbc\x81", "\xef\xbc\x9f",
                                 "\xef\xbc\x8e", "\xe3\x80\x8d", "\xe3\x80\x8f", "\xe2\x80\x9d", "\xe2\x80\x99",
                                 "\xe0\xa5\xa4", "\xd8\x9f", "\xdb\x94", NULL};

static int all_space(const u8 *s, Py_ssize_t n) {
    const u8 *p = s, *end = s + n;
    while (p < end) { int w = space_at(p, end); if (!w) return 0; p += w; }
    return 1;
}

static Py_ssize_t chars_of(const u8 *s, Py_ssize_t n) {
    Py_ssize_t c = 0;
    for (Py_ssize_t i = 0; i < n; i++) c += !is_cont(s[i]);
    return c;
}

/* Duplicate elements (equal to an earlier one): count and characters. */
typedef struct { StrTable tab; Py_ssize_t n, dup, dup_chars; } Dups;

static void dups_add(Dups *d, const u8 *s, Py_ssize_t len) {
    int fresh;
    strtab_id(&d->tab, s, len, &fresh);
    d->n++;
    if (!fresh) { d->dup++; d->dup_chars += chars_of(s, len); }
}

static PyObject *line_stats(PyObject *self, PyObject *args) {
    Py_buffer text;
    if (!PyArg_ParseTuple(args, "y*", &text)) return NULL;
    const u8 *s = text.buf, *end = s + text.len;
    Py_ssize_t max_items = text.len / 2 + 2;
    Dups lines = {0}, paras = {0};
    PyObject *result = NULL;
    if (strtab_init(&lines.tab, max_items) || strtab_init(&paras.tab, max_items)) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_lines = 0, bullets = 0, ellipsis = 0, terminal = 0, max_len = 0;
    const u8 *line = s, *para = s;
    int blank_run = 0;  /* newlines seen in a row */
    for (const u8 *p = s; p <= end; p++) {
        if (p < end && *p != '\n') {
            if (blank_run >= 2) {  /* a paragraph ended where this run of 2+ newlines began */
                const u8 *stop = p - blank_run;
                if (!all_space(para, stop - para)) dups_add(&paras, para, stop - para);
                para = p;
            }
            blank_run = 0;
            continue;
        }
        Py_ssize_t len = p - line, chars = chars_of(line, len);
        if (chars > max_len) max_len = chars;
        if (!all_space(line, len)) {
            n_lines++;
            dups_add(&lines, line, len);
            const u8 *q = line, *le = line + len;
            int w;
            while (q < le && (w = space_at(q, le))) q += w;
            bullets += (le - q >= 3 && memcmp(q, "\xe2\x80\xa2", 3) == 0) || (le > q && *q == '-');  /* • or - */
            int dots = ends_with(line, len, "...");
            ellipsis += dots || ends_with(line, len, "\xe2\x80\xa6");
            if (!dots)
                for (const char **t = TERMINAL; *t; t++)
                    if (ends_with(line, len, *t)) { terminal++; break; }
        }
        if (p == end) {
            const u8 *stop = blank_run >= 2 ? end - blank_run : end;
            if (stop > para && !all_space(para, stop - para)) dups_add(&paras, para, stop - para);
            break;
        }
        blank_run++;
        line = p + 1;
    }
    result = Py_BuildValue("nnnnnnnnnn", n_lines, bullets, ellipsis, terminal, max_len,
                           lines.dup, lines.dup_chars, paras.n, paras.dup, paras.dup_chars);
done:
    strtab_free(&lines.tab); strtab_free(&paras.tab);
    PyBuffer_Release(&text);
    return result;
}

static PyMethodDef METHODS[] = {
    {"word_stats", word_stats, METH_VARARGS, "Word counts, stop words, tokens and Gopher n-gram characters."},
    {"line_stats", line_stats, METH_VARARGS, "Line and paragraph counts, ratios and duplicates."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_ctext", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__ctext(void) {
    init_classes();
    return PyModule_Create(&MODULE);
}
