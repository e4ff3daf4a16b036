/* The state tree's update in C: StateTree.update (chainnode/store/tree.py) and its
 * recursion (_apply, _build, _internal_node, _put_leaf, _put_internal, _stale, _groups,
 * _internal, _remember), giving exactly what the Python code gives: the same root ref,
 * the same `nodes` (keys, records and order), the same `internal` records, the same
 * `stale` list, the same calls to `get`, the same changes to the node cache. The Python
 * code is the reference and runs wherever this extension is not built, or with
 * CHAINNODE_PURE_PYTHON=1; tests/store/test_tree_speedups.py holds the two together.
 *
 * Why C: a block of 2,000 writes rewrites ~3,600 internal nodes and ~2,000 leaves; in
 * Python each costs a few microseconds of tuple, list and bytes handling around a ~1 µs
 * digest (issue 18's budget is a whole commit in 3x the commit without the tree). Here a
 * ref is a C struct (Ref) and a node's children are read straight from its record, so an
 * update makes Python objects only for what it hands back: node keys, records, the root.
 *
 * The boundary is one call per block, `update(...)`, which returns NotImplemented, before
 * it has called anything, for inputs outside the common case (a key or value that is not
 * bytes, a malformed parent ref), so that the reference handles them. Nodes are read
 * through the `get` callable and the cache dict (node key -> record) handed in; records
 * this file does not read itself (anything but the canonical encoding the tree writes)
 * are decoded by the Python functions handed over by `configure`, so every decoding error
 * comes from one place.
 *
 * Digests are libcrypto's (SM3 for the `sm` suite, SHA-256 for `ed25519`), called through
 * the EVP function pointers handed over once by `configure` (tree.py takes them from the
 * ctypes-loaded system libcrypto): no OpenSSL headers, no second SM3. Records are the
 * canonical msgpack of chainnode/protocol/codec.py, for exactly the two shapes the tree
 * writes:
 *     leaf      [0, key, value]
 *     internal  [1, bitmap, children's hashes joined, [heights], leaf mask]
 *
 * Snapshot sync (chainnode/blocksync/snapshot.py) has two more steps here, each run for
 * every node of a fetched tree: `check_nodes` checks a response's records against the hashes
 * their parents promised (only canonical records of the two shapes; anything else stops it,
 * and the Python check_node judges that record), and `push_child_asks` puts an internal
 * node's children on the walk's stack (tree.push_child_asks_reference is the reference).
 *
 * No state of its own besides what `configure` hands over; each call makes its own
 * digest context and frees it. The GIL is held throughout (the callbacks need it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define HASH_BYTES 32
#define DIGEST_BYTES_MAX 64 /* EVP_MAX_MD_SIZE: what EVP_DigestFinal_ex may write */
#define DEPTH_MAX 64        /* nibbles in a path */
#define PATH_BYTES_MAX (DEPTH_MAX / 2 + 1)
#define MDS_MAX 4

/* libcrypto (OpenSSL 3), declared here rather than included. */
typedef void *(*md_ctx_new_fn)(void);
typedef void (*md_ctx_free_fn)(void *ctx);
typedef int (*digest_init_fn)(void *ctx, const void *md, void *engine);
typedef int (*digest_update_fn)(void *ctx, const void *data, size_t n);
typedef int (*digest_final_fn)(void *ctx, unsigned char *out, unsigned int *n);

/* Handed over by configure(); held for the life of the process. */
static md_ctx_new_fn md_ctx_new;
static md_ctx_free_fn md_ctx_free;
static digest_init_fn digest_init;
static digest_update_fn digest_update;
static digest_final_fn digest_final;
static const void *mds[MDS_MAX]; /* the EVP_MDs an update may name */
static int mds_count;
static PyObject *py_decode_internal; /* tree.decode_internal: raw -> children, or the error */
static PyObject *py_leaf_fields;     /* tree._leaf_fields: raw -> (key, value) */
static Py_ssize_t record_bytes_max;  /* tree.NODE_RECORD_BYTES_MAX */

/* ---- digests --------------------------------------------------------------------------- */

typedef struct {
    void *ctx;
    const void *md;
} Hasher;

/* out = H(a || b || c) */
static int
digest3(Hasher *h, const void *a, size_t na, const void *b, size_t nb, const void *c, size_t nc,
        unsigned char out[HASH_BYTES])
{
    unsigned char full[DIGEST_BYTES_MAX];
    unsigned int n = 0;
    if (digest_init(h->ctx, h->md, NULL) != 1 || digest_update(h->ctx, a, na) != 1
        || (nb && digest_update(h->ctx, b, nb) != 1) || (nc && digest_update(h->ctx, c, nc) != 1)
        || digest_final(h->ctx, full, &n) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "libcrypto failed to compute a digest");
        return -1;
    }
    if (n != HASH_BYTES) {
        PyErr_Format(PyExc_RuntimeError, "the state tree's digest is %u bytes, not %d", n, HASH_BYTES);
        return -1;
    }
    memcpy(out, full, HASH_BYTES);
    return 0;
}

static int
digest_bytes(Hasher *h, PyObject *data, unsigned char out[HASH_BYTES])
{
    return digest3(h, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), NULL, 0, NULL, 0, out);
}

static int
hasher_open(Hasher *h, const void *md)
{
    h->md = md;
    h->ctx = md_ctx_new();
    if (h->ctx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
hasher_close(Hasher *h)
{
    if (h->ctx != NULL)
        md_ctx_free(h->ctx);
    h->ctx = NULL;
}

/* ---- canonical msgpack, for exactly the tree's records ----------------------------------- */

/* The shortest encoding of a non-negative int, as msgpack's Packer writes it. */
static unsigned char *
put_uint(unsigned char *p, unsigned long long v)
{
    if (v < 0x80) {
        *p++ = (unsigned char)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (unsigned char)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        *p++ = (unsigned char)(v >> 8);
        *p++ = (unsigned char)v;
    } else if (v <= 0xffffffffULL) {
        *p++ = 0xce;
        for (int s = 24; s >= 0; s -= 8)
            *p++ = (unsigned char)(v >> s);
    } else {
        *p++ = 0xcf;
        for (int s = 56; s >= 0; s -= 8)
            *p++ = (unsigned char)(v >> s);
    }
    return p;
}

/* A bin header; n < 2**32 (checked by the caller). */
static unsigned char *
put_bin_header(unsigned char *p, size_t n)
{
    if (n <= 0xff) {
        *p++ = 0xc4;
        *p++ = (unsigned char)n;
    } else if (n <= 0xffff) {
        *p++ = 0xc5;
        *p++ = (unsigned char)(n >> 8);
        *p++ = (unsigned char)n;
    } else {
        *p++ = 0xc6;
        for (int s = 24; s >= 0; s -= 8)
            *p++ = (unsigned char)(n >> s);
    }
    return p;
}

/* pack([0, key, value]) */
static PyObject *
pack_leaf(PyObject *key, PyObject *value)
{
    size_t nk = (size_t)PyBytes_GET_SIZE(key), nv = (size_t)PyBytes_GET_SIZE(value);
    if (nk > 0xffffffffULL || nv > 0xffffffffULL) {
        PyErr_SetString(PyExc_ValueError, "cannot encode value: bytes object is too large");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(2 + 5 + nk + 5 + nv));
    if (out == NULL)
        return NULL;
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(out), *p = start;
    *p++ = 0x93;
    *p++ = 0x00;
    p = put_bin_header(p, nk);
    memcpy(p, PyBytes_AS_STRING(key), nk);
    p += nk;
    p = put_bin_header(p, nv);
    memcpy(p, PyBytes_AS_STRING(value), nv);
    p += nv;
    if (_PyBytes_Resize(&out, p - start) < 0)
        return NULL;
    return out;
}

/* Reading: each function returns 1 with the value, or 0 when the bytes are not the
 * canonical encoding of what was expected (the caller then leaves the record to Python). */
typedef struct {
    const unsigned char *p, *end;
} Reader;

static int
read_uint(Reader *r, unsigned long long *v)
{
    if (r->p >= r->end)
        return 0;
    unsigned char b = *r->p++;
    int n;
    unsigned long long least; /* the smallest value that needs this form */
    if (b < 0x80) {
        *v = b;
        return 1;
    }
    switch (b) {
    case 0xcc: n = 1; least = 0x80; break;
    case 0xcd: n = 2; least = 0x100; break;
    case 0xce: n = 4; least = 0x10000; break;
    case 0xcf: n = 8; least = 0x100000000ULL; break;
    default: return 0;
    }
    if (r->end - r->p < n)
        return 0;
    unsigned long long x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | *r->p++;
    if (x < least)
        return 0;
    *v = x;
    return 1;
}

static int
read_bin(Reader *r, const unsigned char **data, size_t *len)
{
    if (r->p >= r->end)
        return 0;
    unsigned char b = *r->p++;
    int n;
    size_t least;
    switch (b) {
    case 0xc4: n = 1; least = 0; break;
    case 0xc5: n = 2; least = 0x100; break;
    case 0xc6: n = 4; least = 0x10000; break;
    default: return 0;
    }
    if (r->end - r->p < n)
        return 0;
    size_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | *r->p++;
    if (x < least || (size_t)(r->end - r->p) < x)
        return 0;
    *data = r->p;
    *len = x;
    r->p += x;
    return 1;
}

static int
read_array(Reader *r, size_t *count)
{
    if (r->p >= r->end)
        return 0;
    unsigned char b = *r->p++;
    if ((b & 0xf0) == 0x90) {
        *count = b & 0x0f;
        return 1;
    }
    if (b != 0xdc || r->end - r->p < 2) /* tree records have at most 16 items */
        return 0;
    size_t x = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    if (x < 16)
        return 0;
    *count = x;
    return 1;
}

static int
popcount16(unsigned int v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

/* ---- refs and internal nodes, in C ---------------------------------------------------------- */

/* How a parent points at a child: tree.py's ref tuple (hash, height written, is leaf), or
 * None. Inside an update refs are these structs; tuples are made for the root only. */
enum { NONE = 0, INTERNAL = 1, LEAF = 2 };

typedef struct {
    unsigned char hash[HASH_BYTES];
    unsigned long long height;
    int kind;
} Ref;

/* Python's == of two refs (None, or equal hash, height and is-leaf). */
static int
ref_eq(const Ref *a, const Ref *b)
{
    if (a->kind != b->kind)
        return 0;
    return a->kind == NONE || (a->height == b->height && memcmp(a->hash, b->hash, HASH_BYTES) == 0);
}

/* The 16 children of an internal node's canonical record (what tree.decode_internal
 * accepts of bytes, exactly: the Python function is asked about anything else). Returns
 * 1, or 0 when the record is not one. */
static int
parse_internal(const unsigned char *data, Py_ssize_t size, Ref children[16])
{
    Reader r = {data, data + size};
    size_t count, nh, nheights;
    unsigned long long tag, bitmap, leaves, heights[16];
    const unsigned char *hashes;
    if (size > record_bytes_max || !read_array(&r, &count) || count != 5 || !read_uint(&r, &tag) || tag != 1
        || !read_uint(&r, &bitmap) || bitmap == 0 || bitmap > 0xffff)
        return 0;
    int n = popcount16((unsigned int)bitmap);
    if (!read_bin(&r, &hashes, &nh) || nh != (size_t)n * HASH_BYTES || !read_array(&r, &nheights)
        || nheights != (size_t)n)
        return 0;
    for (int j = 0; j < n; j++)
        if (!read_uint(&r, &heights[j]))
            return 0;
    if (!read_uint(&r, &leaves) || (leaves & ~bitmap) != 0 || r.p != r.end)
        return 0;
    for (int i = 0, j = 0; i < 16; i++) {
        if (bitmap >> i & 1) {
            memcpy(children[i].hash, hashes + HASH_BYTES * j, HASH_BYTES);
            children[i].height = heights[j];
            children[i].kind = leaves >> i & 1 ? LEAF : INTERNAL;
            j++;
        } else {
            children[i].kind = NONE;
        }
    }
    return 1;
}

/* ref <- a ref tuple (hash, height, is leaf) or None; 0 when it is neither (or its height
 * does not fit in 8 bytes): the reference gets that one. */
static int
ref_from_object(PyObject *obj, Ref *ref)
{
    if (obj == Py_None) {
        ref->kind = NONE;
        return 1;
    }
    if (!PyTuple_CheckExact(obj) || PyTuple_GET_SIZE(obj) != 3)
        return 0;
    PyObject *hash = PyTuple_GET_ITEM(obj, 0), *height = PyTuple_GET_ITEM(obj, 1), *leaf = PyTuple_GET_ITEM(obj, 2);
    if (!PyBytes_CheckExact(hash) || PyBytes_GET_SIZE(hash) != HASH_BYTES || !PyLong_CheckExact(height)
        || !PyBool_Check(leaf))
        return 0;
    ref->height = PyLong_AsUnsignedLongLong(height);
    if (ref->height == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    memcpy(ref->hash, PyBytes_AS_STRING(hash), HASH_BYTES);
    ref->kind = leaf == Py_True ? LEAF : INTERNAL;
    return 1;
}

/* The ref tuple of `ref` (a new reference); `height` is its height as an int, if at hand. */
static PyObject *
ref_to_object(const Ref *ref, PyObject *height)
{
    if (ref->kind == NONE)
        Py_RETURN_NONE;
    PyObject *hash = PyBytes_FromStringAndSize((const char *)ref->hash, HASH_BYTES);
    PyObject *h = height != NULL ? (Py_INCREF(height), height) : PyLong_FromUnsignedLongLong(ref->height);
    PyObject *t = hash != NULL && h != NULL ? PyTuple_New(3) : NULL;
    if (t == NULL) {
        Py_XDECREF(hash);
        Py_XDECREF(h);
        return NULL;
    }
    PyObject *leaf = ref->kind == LEAF ? Py_True : Py_False;
    Py_INCREF(leaf);
    PyTuple_SET_ITEM(t, 0, hash);
    PyTuple_SET_ITEM(t, 1, h);
    PyTuple_SET_ITEM(t, 2, leaf);
    return t;
}

/* tree._leaf_fields: *key and *value, new references to bytes. */
static int
leaf_fields(PyObject *raw, PyObject **key, PyObject **value)
{
    if (PyBytes_CheckExact(raw) && PyBytes_GET_SIZE(raw) <= record_bytes_max) {
        Reader r = {(const unsigned char *)PyBytes_AS_STRING(raw),
                    (const unsigned char *)PyBytes_AS_STRING(raw) + PyBytes_GET_SIZE(raw)};
        size_t count, nk, nv;
        unsigned long long tag;
        const unsigned char *k, *v;
        if (read_array(&r, &count) && count == 3 && read_uint(&r, &tag) && tag == 0 && read_bin(&r, &k, &nk)
            && read_bin(&r, &v, &nv) && r.p == r.end) {
            *key = PyBytes_FromStringAndSize((const char *)k, (Py_ssize_t)nk);
            *value = *key == NULL ? NULL : PyBytes_FromStringAndSize((const char *)v, (Py_ssize_t)nv);
            if (*value == NULL) {
                Py_CLEAR(*key);
                return -1;
            }
            return 0;
        }
    }
    PyObject *pair = PyObject_CallOneArg(py_leaf_fields, raw);
    if (pair == NULL)
        return -1;
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0))
        || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_SystemError, "tree._leaf_fields did not return (bytes, bytes)");
        return -1;
    }
    *key = PyTuple_GET_ITEM(pair, 0);
    *value = PyTuple_GET_ITEM(pair, 1);
    Py_INCREF(*key);
    Py_INCREF(*value);
    Py_DECREF(pair);
    return 0;
}

/* ---- the update -------------------------------------------------------------------------- */

/* One write, as tree.py's entry tuple (H(key), key, value, existed). */
typedef struct {
    unsigned char kh[HASH_BYTES];
    PyObject *key;   /* bytes, a strong reference */
    PyObject *value; /* bytes, a strong reference; NULL for a delete */
    int existed;
} Entry;

typedef struct {
    Hasher h;
    PyObject *get;   /* node key -> record bytes, or None */
    PyObject *cache; /* internal node key -> record: StateTree._cache */
    Py_ssize_t cache_max;
    unsigned long long height; /* the block's */
    PyObject *nodes, *internal, *stale; /* TreeUpdate's */
} Update;

static int
bytes_cmp(PyObject *a, PyObject *b)
{
    Py_ssize_t na = PyBytes_GET_SIZE(a), nb = PyBytes_GET_SIZE(b);
    int c = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), (size_t)(na < nb ? na : nb));
    return c ? c : (na > nb) - (na < nb);
}

/* Python's order of entry tuples. Keys are unique within a block's writes, so a sort never
 * gets past the key but when a pushed-down leaf meets a new write of its own key (the
 * caller's `existed` disagreed with the tree): both values are then bytes. */
static int
entry_cmp(const Entry *a, const Entry *b)
{
    int c = memcmp(a->kh, b->kh, HASH_BYTES);
    if (c == 0)
        c = bytes_cmp(a->key, b->key);
    if (c == 0 && a->value != NULL && b->value != NULL)
        c = bytes_cmp(a->value, b->value);
    return c ? c : a->existed - b->existed;
}

static int
entry_ptr_cmp(const void *x, const void *y)
{
    return entry_cmp(*(Entry *const *)x, *(Entry *const *)y);
}

static inline int
nibble_at(const Entry *e, int depth)
{
    unsigned char b = e->kh[depth >> 1];
    return depth & 1 ? b & 15 : b >> 4;
}

/* Past the 64th nibble (only two writes with one H(key) get there): Python's IndexError. */
static int
past_the_path(void)
{
    PyErr_SetString(PyExc_IndexError, "index out of range");
    return -1;
}

static void
child_path(const unsigned char *path, int depth, int nib, unsigned char *out)
{
    int n = (depth + 1) >> 1;
    memcpy(out, path, (size_t)n);
    if (depth & 1)
        out[n - 1] |= (unsigned char)nib;
    else
        out[n] = (unsigned char)(nib << 4);
}

/* z:<depth:1><path:ceil(depth/2)><height:8> */
static PyObject *
node_key(int depth, const unsigned char *path, unsigned long long height)
{
    Py_ssize_t n = (depth + 1) >> 1;
    PyObject *k = PyBytes_FromStringAndSize(NULL, 3 + n + 8);
    if (k == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(k);
    p[0] = 'z';
    p[1] = ':';
    p[2] = (unsigned char)depth;
    memcpy(p + 3, path, (size_t)n);
    for (int i = 3 + (int)n + 7; i >= 3 + (int)n; i--, height >>= 8)
        p[i] = (unsigned char)height;
    return k;
}

/* get(k), raising KeyError as tree._load does when the node is missing. */
static PyObject *
load(Update *u, PyObject *k)
{
    PyObject *raw = PyObject_CallOneArg(u->get, k);
    if (raw != Py_None)
        return raw;
    Py_DECREF(raw);
    PyObject *hex = PyObject_CallMethod(k, "hex", NULL);
    if (hex != NULL) {
        PyErr_Format(PyExc_KeyError, "state tree node %U is missing from the database", hex);
        Py_DECREF(hex);
    }
    return NULL;
}

/* tree._trim: drop the oldest entries until at most `size` are left, in one pass. */
static int
trim(PyObject *cache, Py_ssize_t size)
{
    Py_ssize_t excess = PyDict_GET_SIZE(cache) - size, n = 0, pos = 0;
    if (excess <= 0)
        return 0;
    PyObject **oldest = PyMem_Malloc((size_t)excess * sizeof(PyObject *));
    if (oldest == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *key, *value;
    while (n < excess && PyDict_Next(cache, &pos, &key, &value)) {
        Py_INCREF(key);
        oldest[n++] = key;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rc == 0 && PyDict_DelItem(cache, oldest[i]) < 0)
            rc = -1;
        Py_DECREF(oldest[i]);
    }
    PyMem_Free(oldest);
    return rc;
}

/* StateTree._remember */
static int
remember(Update *u, PyObject *k, PyObject *record)
{
    if (PyDict_GET_SIZE(u->cache) >= u->cache_max && trim(u->cache, u->cache_max - 1 - u->cache_max / 8) < 0)
        return -1;
    return PyDict_SetItem(u->cache, k, record);
}

/* StateTree._internal: the children of internal node k, from the cache or the store. */
static int
internal(Update *u, PyObject *k, Ref children[16])
{
    PyObject *record = PyDict_GetItemWithError(u->cache, k);
    if (record != NULL && record != Py_None) {
        if (PyBytes_CheckExact(record)
            && parse_internal((const unsigned char *)PyBytes_AS_STRING(record), PyBytes_GET_SIZE(record), children))
            return 0;
        PyErr_Format(PyExc_SystemError, "state tree node %R: the node cache holds something else than its record", k);
        return -1;
    }
    if (PyErr_Occurred())
        return -1;
    PyObject *raw = load(u, k);
    if (raw == NULL)
        return -1;
    if (!PyBytes_CheckExact(raw)
        || !parse_internal((const unsigned char *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), children)) {
        /* Not a record this file reads: tree.decode_internal says what is wrong with it. */
        PyObject *decoded = PyObject_CallOneArg(py_decode_internal, raw);
        if (decoded == NULL) {
            Py_DECREF(raw);
            return -1;
        }
        Py_DECREF(decoded);
        Py_SETREF(raw, PyBytes_FromObject(raw)); /* bytes(raw), as the reference caches it */
        if (raw == NULL)
            return -1;
        if (!parse_internal((const unsigned char *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), children)) {
            Py_DECREF(raw);
            PyErr_Format(PyExc_SystemError, "state tree node %R: decode_internal took a record the accelerator cannot read", k);
            return -1;
        }
    }
    int rc = remember(u, k, raw);
    Py_DECREF(raw);
    return rc;
}

/* StateTree._stale */
static int
stale(Update *u, PyObject *k)
{
    int written = PyDict_Contains(u->nodes, k);
    if (written < 0)
        return -1;
    if (!written)
        return PyList_Append(u->stale, k);
    if (PyDict_DelItem(u->nodes, k) < 0)
        return -1;
    PyObject *record = PyDict_GetItemWithError(u->internal, k);
    if (record != NULL)
        return PyDict_DelItem(u->internal, k);
    return PyErr_Occurred() ? -1 : 0;
}

/* H(0x00 || H(key) || H(value)) */
static int
leaf_hash(Update *u, const Entry *e, unsigned char out[HASH_BYTES])
{
    static const unsigned char tag = 0x00;
    unsigned char vh[HASH_BYTES];
    if (digest_bytes(&u->h, e->value, vh) < 0)
        return -1;
    return digest3(&u->h, &tag, 1, e->kh, HASH_BYTES, vh, HASH_BYTES, out);
}

/* StateTree._put_leaf; `hash` is the leaf's, when already computed. */
static int
put_leaf(Update *u, int depth, const unsigned char *path, const Entry *e, const unsigned char *hash, Ref *out)
{
    PyObject *k = node_key(depth, path, u->height);
    if (k == NULL)
        return -1;
    PyObject *record = pack_leaf(e->key, e->value);
    int rc = record == NULL ? -1 : PyDict_SetItem(u->nodes, k, record);
    Py_DECREF(k);
    Py_XDECREF(record);
    if (rc < 0)
        return -1;
    if (hash != NULL)
        memcpy(out->hash, hash, HASH_BYTES);
    else if (leaf_hash(u, e, out->hash) < 0)
        return -1;
    out->height = u->height;
    out->kind = LEAF;
    return 0;
}

/* StateTree._put_internal: the record and the hash, in one pass. */
static int
put_internal(Update *u, int depth, const unsigned char *path, const Ref ch[16], Ref *out)
{
    /* [1, bitmap, hashes, heights, leaves]: at most 1+1+3 + 3+16*32 + 3+16*9 + 3 bytes */
    unsigned char record[1024];
    unsigned char hashed[3 + 16 * HASH_BYTES]; /* 0x01 || bitmap || hashes */
    unsigned int bitmap = 0, leaves = 0;
    int n = 0;
    for (int i = 0; i < 16; i++) {
        if (ch[i].kind == NONE)
            continue;
        bitmap |= 1u << i;
        if (ch[i].kind == LEAF)
            leaves |= 1u << i;
        memcpy(hashed + 3 + HASH_BYTES * n++, ch[i].hash, HASH_BYTES);
    }
    hashed[0] = 0x01;
    hashed[1] = (unsigned char)(bitmap >> 8);
    hashed[2] = (unsigned char)bitmap;
    size_t joined = (size_t)n * HASH_BYTES;
    unsigned char *p = record;
    *p++ = 0x95;
    *p++ = 0x01;
    p = put_uint(p, bitmap);
    p = put_bin_header(p, joined);
    memcpy(p, hashed + 3, joined);
    p += joined;
    if (n < 16) {
        *p++ = (unsigned char)(0x90 | n);
    } else {
        *p++ = 0xdc;
        *p++ = 0x00;
        *p++ = 0x10;
    }
    for (int i = 0; i < 16; i++)
        if (ch[i].kind != NONE)
            p = put_uint(p, ch[i].height);
    p = put_uint(p, leaves);

    PyObject *k = node_key(depth, path, u->height);
    if (k == NULL)
        return -1;
    PyObject *raw = PyBytes_FromStringAndSize((const char *)record, p - record);
    int rc = raw == NULL || PyDict_SetItem(u->nodes, k, raw) < 0 || PyDict_SetItem(u->internal, k, raw) < 0 ? -1 : 0;
    Py_XDECREF(raw);
    Py_DECREF(k);
    if (rc < 0 || digest3(&u->h, hashed, 3 + joined, NULL, 0, NULL, 0, out->hash) < 0)
        return -1;
    out->height = u->height;
    out->kind = INTERNAL;
    return 0;
}

/* StateTree._internal_node: nothing, a lone leaf moved up, or an internal node. */
static int
internal_node(Update *u, int depth, const unsigned char *path, const Ref ch[16], Ref *out)
{
    int present = 0, last = -1;
    for (int i = 0; i < 16; i++) {
        if (ch[i].kind != NONE) {
            present++;
            last = i;
        }
    }
    if (present == 0) {
        out->kind = NONE;
        return 0;
    }
    if (present > 1 || ch[last].kind != LEAF)
        return put_internal(u, depth, path, ch, out);
    unsigned char cpath[PATH_BYTES_MAX];
    child_path(path, depth, last, cpath);
    PyObject *k = node_key(depth + 1, cpath, ch[last].height);
    if (k == NULL)
        return -1;
    int rc = -1;
    PyObject *moved = NULL;
    /* record = u.nodes.pop(k, None) */
    PyObject *record = PyDict_GetItemWithError(u->nodes, k);
    Py_XINCREF(record);
    if (record != NULL && PyDict_DelItem(u->nodes, k) < 0)
        goto done;
    if (record == Py_None)
        Py_CLEAR(record);
    if (record == NULL) {
        if (PyErr_Occurred())
            goto done;
        /* written by an earlier block */
        record = load(u, k);
        if (record == NULL || stale(u, k) < 0)
            goto done;
    }
    moved = node_key(depth, path, u->height);
    if (moved == NULL || PyDict_SetItem(u->nodes, moved, record) < 0)
        goto done;
    memcpy(out->hash, ch[last].hash, HASH_BYTES);
    out->height = u->height;
    out->kind = LEAF;
    rc = 0;
done:
    Py_DECREF(k);
    Py_XDECREF(record);
    Py_XDECREF(moved);
    return rc;
}

/* StateTree._build: a subtree of exactly the live entries, where there was nothing. The
 * live entries are compacted in place: no caller reads its run of entries again. */
static int
build(Update *u, int depth, const unsigned char *path, Entry **e, Py_ssize_t n, Ref *out)
{
    Py_ssize_t live = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (e[i]->value != NULL)
            e[live++] = e[i];
    if (live == 0) {
        out->kind = NONE;
        return 0;
    }
    if (live == 1)
        return put_leaf(u, depth, path, e[0], NULL, out);
    if (depth >= DEPTH_MAX)
        return past_the_path();
    Ref ch[16];
    for (int i = 0; i < 16; i++)
        ch[i].kind = NONE;
    for (Py_ssize_t i = 0, j; i < live; i = j) {
        int nib = nibble_at(e[i], depth);
        for (j = i + 1; j < live && nibble_at(e[j], depth) == nib; j++)
            ;
        unsigned char cpath[PATH_BYTES_MAX];
        child_path(path, depth, nib, cpath);
        if (build(u, depth + 1, cpath, e + i, j - i, &ch[nib]) < 0)
            return -1;
    }
    return put_internal(u, depth, path, ch, out);
}

static int apply(Update *u, const Ref *ref, int depth, const unsigned char *path, Entry **e, Py_ssize_t n, Ref *out);

/* Only new keys on another key's leaf: that leaf is pushed down beside them. */
static int
push_down(Update *u, PyObject *k, int depth, const unsigned char *path, Entry **e, Py_ssize_t n, Ref *out)
{
    Entry leaf = {.existed = 1};
    Entry **all = NULL;
    int rc = -1;
    PyObject *raw = load(u, k);
    if (raw == NULL)
        return -1;
    int got = leaf_fields(raw, &leaf.key, &leaf.value);
    Py_DECREF(raw);
    if (got < 0)
        return -1;
    if (digest_bytes(&u->h, leaf.key, leaf.kh) < 0)
        goto done;
    all = PyMem_Malloc((size_t)(n + 1) * sizeof(Entry *));
    if (all == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* sorted(entries + [leaf]): the entries are sorted already */
    Py_ssize_t at = 0;
    while (at < n && entry_cmp(e[at], &leaf) <= 0)
        at++;
    memcpy(all, e, (size_t)at * sizeof(Entry *));
    all[at] = &leaf;
    memcpy(all + at + 1, e + at, (size_t)(n - at) * sizeof(Entry *));
    if (stale(u, k) < 0)
        goto done;
    rc = build(u, depth, path, all, n + 1, out);
done:
    PyMem_Free(all);
    Py_XDECREF(leaf.key);
    Py_XDECREF(leaf.value);
    return rc;
}

/* The internal node k (now `ref`) after the entries under it. */
static int
apply_internal(Update *u, const Ref *ref, PyObject *k, int depth, const unsigned char *path, Entry **e,
               Py_ssize_t n, Ref *out)
{
    Ref ch[16];
    if (internal(u, k, ch) < 0)
        return -1;
    if (depth >= DEPTH_MAX)
        return past_the_path();
    int same = 1; /* children == old */
    for (Py_ssize_t i = 0, j; i < n; i = j) {
        int nib = nibble_at(e[i], depth);
        for (j = i + 1; j < n && nibble_at(e[j], depth) == nib; j++)
            ;
        unsigned char cpath[PATH_BYTES_MAX];
        child_path(path, depth, nib, cpath);
        Ref old = ch[nib];
        if (apply(u, &old, depth + 1, cpath, e + i, j - i, &ch[nib]) < 0)
            return -1;
        same = same && ref_eq(&ch[nib], &old);
    }
    if (same) {
        *out = *ref;
        return 0;
    }
    if (stale(u, k) < 0)
        return -1;
    return internal_node(u, depth, path, ch, out);
}

/* StateTree._apply: the subtree at (depth, path), now `ref`, after the entries. */
static int
apply(Update *u, const Ref *ref, int depth, const unsigned char *path, Entry **e, Py_ssize_t n, Ref *out)
{
    if (ref->kind == NONE)
        return build(u, depth, path, e, n, out);
    PyObject *k = node_key(depth, path, ref->height);
    if (k == NULL)
        return -1;
    int rc = -1;
    if (ref->kind == INTERNAL) {
        rc = apply_internal(u, ref, k, depth, path, e, n, out);
    } else if (n == 1 && e[0]->existed) { /* its own key, changed or deleted in place */
        unsigned char hash[HASH_BYTES];
        if (e[0]->value != NULL) {
            if (leaf_hash(u, e[0], hash) < 0)
                goto done;
            if (memcmp(hash, ref->hash, HASH_BYTES) == 0) { /* written with the value it had */
                *out = *ref;
                rc = 0;
                goto done;
            }
        }
        if (stale(u, k) < 0)
            goto done;
        if (e[0]->value != NULL) {
            rc = put_leaf(u, depth, path, e[0], hash, out);
        } else {
            out->kind = NONE;
            rc = 0;
        }
    } else {
        int any_existed = 0;
        for (Py_ssize_t i = 0; i < n && !any_existed; i++)
            any_existed = e[i]->existed;
        if (!any_existed) /* only new keys: the leaf is another key's, pushed down */
            rc = push_down(u, k, depth, path, e, n, out);
        else if (stale(u, k) == 0)
            rc = build(u, depth, path, e, n, out);
    }
done:
    Py_DECREF(k);
    return rc;
}

/* update(parent, writes, existed, height, get, cache, cache_entries_max, md)
 *     -> (root ref, nodes, internal, stale), or NotImplemented */
static PyObject *
update(PyObject *module, PyObject *args)
{
    PyObject *parent, *writes, *existed, *height, *get, *cache, *md_obj;
    Py_ssize_t cache_max;
    if (!PyArg_ParseTuple(args, "OOOO!OOnO:update", &parent, &writes, &existed, &PyLong_Type, &height, &get, &cache,
                          &cache_max, &md_obj))
        return NULL;
    if (md_ctx_new == NULL)
        return PyErr_Format(PyExc_RuntimeError, "chainnode.store._treespeed: configure() was not called");
    const void *md = PyLong_AsVoidPtr(md_obj);
    if (md == NULL && PyErr_Occurred())
        return NULL;
    int known = 0;
    for (int i = 0; i < mds_count; i++)
        known |= mds[i] == md;
    if (!known)
        return PyErr_Format(PyExc_ValueError, "digest %R was not handed to configure()", md_obj);
    Update u = {.get = get, .cache = cache, .cache_max = cache_max};
    u.height = PyLong_AsUnsignedLongLong(height);
    if (u.height == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (cache_max < 1)
        return PyErr_Format(PyExc_ValueError, "the node cache holds at least one node");
    Ref root, start;
    if (!PyDict_CheckExact(writes) || !PyDict_CheckExact(cache) || !ref_from_object(parent, &start))
        Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = PyDict_GET_SIZE(writes), pos = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(writes, &pos, &key, &value)) {
        if (!PyBytes_CheckExact(key) || (value != Py_None && !PyBytes_CheckExact(value)))
            Py_RETURN_NOTIMPLEMENTED;
    }

    PyObject *result = NULL;
    Entry *entries = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Entry));
    Entry **sorted = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Entry *));
    if (entries == NULL || sorted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The writes' keys and values, held: `existed` is Python code and may touch the dict. */
    pos = 0;
    while (i < n && PyDict_Next(writes, &pos, &key, &value)) {
        Py_INCREF(key);
        entries[i].key = key;
        if (value != Py_None) {
            Py_INCREF(value);
            entries[i].value = value;
        }
        sorted[i] = &entries[i];
        i++;
    }
    if (hasher_open(&u.h, md) < 0)
        goto done;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (digest_bytes(&u.h, entries[j].key, entries[j].kh) < 0)
            goto done;
        if (existed == Py_None) /* from_empty */
            continue;
        PyObject *r = PyObject_CallOneArg(existed, entries[j].key);
        if (r == NULL)
            goto done;
        int is_bool = r == Py_True || r == Py_False;
        entries[j].existed = r == Py_True;
        Py_DECREF(r);
        if (!is_bool) {
            /* The reference keeps whatever `existed` returned and takes its truth only where
               it looks: left to it (which asks `existed` again). */
            Py_INCREF(Py_NotImplemented);
            result = Py_NotImplemented;
            goto done;
        }
    }
    if (PyDict_GET_SIZE(writes) != n) {
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
        goto done;
    }
    qsort(sorted, (size_t)n, sizeof(Entry *), entry_ptr_cmp);
    Py_ssize_t m = 0; /* deleting an absent key changes nothing */
    for (Py_ssize_t j = 0; j < n; j++)
        if (sorted[j]->value != NULL || sorted[j]->existed)
            sorted[m++] = sorted[j];
    u.nodes = PyDict_New();
    u.internal = PyDict_New();
    u.stale = PyList_New(0);
    if (u.nodes == NULL || u.internal == NULL || u.stale == NULL)
        goto done;
    root = start;
    if (m > 0 && apply(&u, &start, 0, (const unsigned char *)"", sorted, m, &root) < 0)
        goto done;
    PyObject *root_obj;
    if (ref_eq(&root, &start)) { /* the parent's ref itself, as `return ref` gives it */
        Py_INCREF(parent);
        root_obj = parent;
    } else {
        root_obj = ref_to_object(&root, root.height == u.height ? height : NULL);
    }
    if (root_obj != NULL) {
        result = PyTuple_Pack(4, root_obj, u.nodes, u.internal, u.stale);
        Py_DECREF(root_obj);
    }
done:
    hasher_close(&u.h);
    Py_XDECREF(u.nodes);
    Py_XDECREF(u.internal);
    Py_XDECREF(u.stale);
    if (entries != NULL) {
        for (Py_ssize_t j = 0; j < i; j++) {
            Py_XDECREF(entries[j].key);
            Py_XDECREF(entries[j].value);
        }
    }
    PyMem_Free(entries);
    PyMem_Free(sorted);
    return result;
}

/* ---- snapshot sync: checking fetched nodes ----------------------------------------------- */

/* A fetched record of canonical form, checked against the hash its parent promised
 * (chainnode/blocksync/snapshot.py check_node, for the records it meets from honest
 * peers): 1 and *is_leaf, *bitmap, *hashes (an internal node's children's hashes, in
 * `rec`) when it is one and hashes right; 0 for anything else, which the Python check then
 * judges (it accepts or names the fault). */
static int
check_record(Hasher *h, PyObject *rec, PyObject *want, int *is_leaf, unsigned int *bitmap_out,
             const unsigned char **hashes_out, int *failed)
{
    unsigned char got[HASH_BYTES], kh[HASH_BYTES], vh[HASH_BYTES];
    *failed = 0;
    if (!PyBytes_CheckExact(rec) || !PyBytes_CheckExact(want) || PyBytes_GET_SIZE(want) != HASH_BYTES
        || PyBytes_GET_SIZE(rec) > record_bytes_max)
        return 0;
    Reader r = {(const unsigned char *)PyBytes_AS_STRING(rec),
                (const unsigned char *)PyBytes_AS_STRING(rec) + PyBytes_GET_SIZE(rec)};
    size_t count, n1, n2, nheights;
    unsigned long long tag, bitmap, v;
    const unsigned char *d1, *d2;
    if (!read_array(&r, &count) || !read_uint(&r, &tag))
        return 0;
    if (count == 3 && tag == 0) {
        if (!read_bin(&r, &d1, &n1) || !read_bin(&r, &d2, &n2) || r.p != r.end)
            return 0;
        if (digest3(h, d1, n1, NULL, 0, NULL, 0, kh) < 0 || digest3(h, d2, n2, NULL, 0, NULL, 0, vh) < 0
            || digest3(h, "\x00", 1, kh, HASH_BYTES, vh, HASH_BYTES, got) < 0) {
            *failed = 1;
            return 0;
        }
        *is_leaf = 1;
    } else if (count == 5 && tag == 1) {
        if (!read_uint(&r, &bitmap) || bitmap == 0 || bitmap > 0xffff || !read_bin(&r, &d1, &n1)
            || n1 != (size_t)popcount16((unsigned int)bitmap) * HASH_BYTES || !read_array(&r, &nheights))
            return 0;
        for (size_t j = 0; j < nheights; j++)
            if (!read_uint(&r, &v))
                return 0;
        if (!read_uint(&r, &v) || r.p != r.end)
            return 0;
        unsigned char b2[2] = {(unsigned char)(bitmap >> 8), (unsigned char)bitmap};
        if (digest3(h, "\x01", 1, b2, 2, d1, n1, got) < 0) {
            *failed = 1;
            return 0;
        }
        *is_leaf = 0;
        *bitmap_out = (unsigned int)bitmap;
        *hashes_out = d1;
    } else {
        return 0;
    }
    return memcmp(got, PyBytes_AS_STRING(want), HASH_BYTES) == 0;
}

/* check_nodes(md, hashes, records, start) -> (checked, stop): the records from `start` on
 * that are there, of canonical form and hash to what `hashes` promised, up to the first
 * that is not (at `stop`: missing, or for the Python check to judge). Each checked one is
 * None for a leaf, or (bitmap, its children's hashes joined) for an internal node. */
static PyObject *
check_nodes(PyObject *module, PyObject *args)
{
    PyObject *md_obj, *hashes, *records;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OO!O!n:check_nodes", &md_obj, &PyList_Type, &hashes, &PyList_Type, &records, &start))
        return NULL;
    const void *md = PyLong_AsVoidPtr(md_obj);
    int known = 0;
    for (int i = 0; i < mds_count; i++)
        known |= mds[i] == md;
    if (md == NULL && PyErr_Occurred())
        return NULL;
    if (!known)
        return PyErr_Format(PyExc_ValueError, "digest %R was not handed to configure()", md_obj);
    Hasher h;
    if (hasher_open(&h, md) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    Py_ssize_t n = PyList_GET_SIZE(hashes) < PyList_GET_SIZE(records) ? PyList_GET_SIZE(hashes) : PyList_GET_SIZE(records);
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; out != NULL && i < n; i++) {
        int is_leaf = 0, failed = 0;
        unsigned int bitmap = 0;
        const unsigned char *child_hashes = NULL;
        if (!check_record(&h, PyList_GET_ITEM(records, i), PyList_GET_ITEM(hashes, i), &is_leaf, &bitmap, &child_hashes, &failed)) {
            if (failed)
                Py_CLEAR(out);
            break;
        }
        PyObject *item;
        if (is_leaf) {
            item = Py_None;
            Py_INCREF(item);
        } else {
            item = Py_BuildValue("(Iy#)", bitmap, (const char *)child_hashes, (Py_ssize_t)popcount16(bitmap) * HASH_BYTES);
        }
        if (item == NULL || PyList_Append(out, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
    hasher_close(&h);
    if (out == NULL)
        return NULL;
    PyObject *result = Py_BuildValue("(Nn)", out, i);
    return result;
}

/* push_child_asks(out, depth, path, bitmap, hashes, parent, first, count):
 * tree.push_child_asks_reference, the same entries appended in the same order. */
static PyObject *
push_child_asks(PyObject *module, PyObject *args)
{
    PyObject *stack, *parent;
    int depth, first, count;
    Py_buffer path, hashes;
    unsigned int bitmap;
    if (!PyArg_ParseTuple(args, "O!iy*Iy*Oii:push_child_asks", &PyList_Type, &stack, &depth, &path, &bitmap, &hashes, &parent,
                          &first, &count))
        return NULL;
    PyObject *result = NULL, *deeper = NULL;
    int n = popcount16(bitmap & 0xffff);
    if (depth < 0 || depth >= DEPTH_MAX || path.len != (depth + 1) / 2 || bitmap == 0 || bitmap > 0xffff
        || hashes.len != (Py_ssize_t)n * HASH_BYTES) {
        PyErr_SetString(PyExc_ValueError, "push_child_asks: depth, path, bitmap and hashes disagree");
        goto done;
    }
    if (first < 0 || count < 0 || first + count > n) {
        PyErr_SetString(PyExc_ValueError, "push_child_asks: first and count are not within the node's children");
        goto done;
    }
    deeper = PyLong_FromLong(depth + 1);
    if (deeper == NULL)
        goto done;
    unsigned char child[PATH_BYTES_MAX];
    Py_ssize_t child_len = (depth + 2) >> 1;
    for (int nib = 0, j = 0; nib < 16 && j < first + count; nib++) {
        if (!(bitmap >> nib & 1))
            continue;
        if (j < first) {
            j++;
            continue;
        }
        child_path((const unsigned char *)path.buf, depth, nib, child);
        PyObject *ask = PyList_New(2);
        PyObject *p = PyBytes_FromStringAndSize((const char *)child, child_len);
        PyObject *h = PyBytes_FromStringAndSize((const char *)hashes.buf + HASH_BYTES * j, HASH_BYTES);
        PyObject *nib_obj = PyLong_FromLong(nib);
        PyObject *entry = PyTuple_New(4);
        if (ask == NULL || p == NULL || h == NULL || nib_obj == NULL || entry == NULL) {
            Py_XDECREF(ask);
            Py_XDECREF(p);
            Py_XDECREF(h);
            Py_XDECREF(nib_obj);
            Py_XDECREF(entry);
            goto done;
        }
        Py_INCREF(deeper);
        PyList_SET_ITEM(ask, 0, deeper);
        PyList_SET_ITEM(ask, 1, p);
        Py_INCREF(parent);
        PyTuple_SET_ITEM(entry, 0, ask);
        PyTuple_SET_ITEM(entry, 1, h);
        PyTuple_SET_ITEM(entry, 2, parent);
        PyTuple_SET_ITEM(entry, 3, nib_obj);
        int failed = PyList_Append(stack, entry);
        Py_DECREF(entry);
        if (failed < 0)
            goto done;
        j++;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(deeper);
    PyBuffer_Release(&path);
    PyBuffer_Release(&hashes);
    return result;
}

/* ---- configuration ----------------------------------------------------------------------- */

static int
address_of(PyObject *obj, void **out, const char *what)
{
    *out = PyLong_AsVoidPtr(obj);
    if (*out == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "configure: %s is a null pointer", what);
        return -1;
    }
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *o_new, *o_free, *o_init, *o_update, *o_final, *md_list, *dec, *leaf;
    Py_ssize_t rmax;
    if (!PyArg_ParseTuple(args, "OOOOOO!OOn:configure", &o_new, &o_free, &o_init, &o_update, &o_final,
                          &PyTuple_Type, &md_list, &dec, &leaf, &rmax))
        return NULL;
    void *f_new, *f_free, *f_init, *f_update, *f_final;
    if (address_of(o_new, &f_new, "EVP_MD_CTX_new") < 0 || address_of(o_free, &f_free, "EVP_MD_CTX_free") < 0
        || address_of(o_init, &f_init, "EVP_DigestInit_ex") < 0
        || address_of(o_update, &f_update, "EVP_DigestUpdate") < 0
        || address_of(o_final, &f_final, "EVP_DigestFinal_ex") < 0)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(md_list);
    if (count < 1 || count > MDS_MAX)
        return PyErr_Format(PyExc_ValueError, "configure: 1 to %d digests", MDS_MAX);
    const void *given[MDS_MAX];
    for (Py_ssize_t i = 0; i < count; i++)
        if (address_of(PyTuple_GET_ITEM(md_list, i), (void **)&given[i], "an EVP_MD") < 0)
            return NULL;
    if (!PyCallable_Check(dec) || !PyCallable_Check(leaf) || rmax < 1)
        return PyErr_Format(PyExc_TypeError, "configure: the decoders are callables, the record limit positive");
    /* Once per process: an update in progress (it calls back into Python) keeps using these. */
    if (md_ctx_new != NULL) {
        int same = (void *)md_ctx_new == f_new && (void *)md_ctx_free == f_free && (void *)digest_init == f_init
                   && (void *)digest_update == f_update && (void *)digest_final == f_final && mds_count == count
                   && py_decode_internal == dec && py_leaf_fields == leaf && record_bytes_max == rmax;
        for (Py_ssize_t i = 0; same && i < count; i++)
            same = mds[i] == given[i];
        if (!same)
            return PyErr_Format(PyExc_RuntimeError, "chainnode.store._treespeed is configured already, differently");
        Py_RETURN_NONE;
    }
    md_ctx_new = (md_ctx_new_fn)f_new;
    md_ctx_free = (md_ctx_free_fn)f_free;
    digest_init = (digest_init_fn)f_init;
    digest_update = (digest_update_fn)f_update;
    digest_final = (digest_final_fn)f_final;
    for (Py_ssize_t i = 0; i < count; i++)
        mds[i] = given[i];
    mds_count = (int)count;
    Py_INCREF(dec);
    py_decode_internal = dec;
    Py_INCREF(leaf);
    py_leaf_fields = leaf;
    record_bytes_max = rmax;
    Py_RETURN_NONE;
}

/* digest(md, data) -> H(data): for the configuration's self-check and the tests. */
static PyObject *
digest(PyObject *module, PyObject *args)
{
    PyObject *md_obj;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Oy*:digest", &md_obj, &data))
        return NULL;
    PyObject *result = NULL;
    const void *md = PyLong_AsVoidPtr(md_obj);
    int known = 0;
    for (int i = 0; i < mds_count; i++)
        known |= mds[i] == md;
    if (md == NULL && PyErr_Occurred()) {
        /* the error is set */
    } else if (!known) {
        PyErr_Format(PyExc_ValueError, "digest %R was not handed to configure()", md_obj);
    } else {
        Hasher h;
        unsigned char out[HASH_BYTES];
        if (hasher_open(&h, md) == 0) {
            if (digest3(&h, data.buf, (size_t)data.len, NULL, 0, NULL, 0, out) == 0)
                result = PyBytes_FromStringAndSize((const char *)out, HASH_BYTES);
            hasher_close(&h);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(EVP_MD_CTX_new, EVP_MD_CTX_free, EVP_DigestInit_ex, EVP_DigestUpdate, EVP_DigestFinal_ex, "
     "(EVP_MD, ...), decode_internal, leaf_fields, record_bytes_max): function and digest addresses, once"},
    {"update", update, METH_VARARGS,
     "update(parent, writes, existed, height, get, cache, cache_entries_max, md) -> "
     "(root ref, nodes, internal, stale), or NotImplemented: StateTree.update's work"},
    {"digest", digest, METH_VARARGS, "digest(md, data) -> bytes"},
    {"check_nodes", check_nodes, METH_VARARGS,
     "check_nodes(md, hashes, records, start) -> (checked, stop): snapshot sync's check of fetched tree nodes"},
    {"push_child_asks", push_child_asks, METH_VARARGS,
     "push_child_asks(out, depth, path, bitmap, hashes, parent, first, count): snapshot sync's walk, a node's children"},
    {NULL},
};

static struct PyModuleDef treespeed_module = {
    PyModuleDef_HEAD_INIT, "chainnode.store._treespeed", NULL, -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__treespeed(void)
{
    return PyModule_Create(&treespeed_module);
}
