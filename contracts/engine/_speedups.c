/* The contract engine's hot services in C: the storage object's `get` and `_assign`
 * (`storage[key] = value`), and `_emit_`, the compiler's form of `emit`; and the engine's
 * `repoint` of its reused top-level storage object, which runs on every call.
 *
 * The Python code is the reference and runs wherever this extension is not built:
 * Storage._get_py, Storage._assign_py and Storage.repoint in store.py, `_emit_` in
 * runtime.py. This file only covers the common case, byte for byte and gas for gas the
 * same: a str or bytes key whose encoding is already memoised, a scalar value, a writable
 * frame, every limit and the meter within bounds. Everything else (a new key, a container,
 * a read-only call, a meter that does not fit in 64 bits, a value or event at or over a
 * limit) is handed to the Python implementation before anything was charged or written, so
 * every error a contract can see comes from one place. tests/contracts/test_speedups.py
 * holds the two together.
 *
 * No state of its own: the memo, the encoder, the decoder, the error type and the gas
 * prices are handed over once by store.py (`configure`), the rest per Emitter by runtime.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *buf;      /* the WriteBuffer (nested calls; the engine re-points the top one) */
    PyObject *writes;   /* that buffer's dict: full key -> bytes, or None for a delete */
    PyObject *parent;   /* what reads fall through to: has get(key) -> bytes | None */
    PyObject *prefix;   /* bytes: the contract's key prefix */
    PyObject *gas;      /* list: [gas left, function depth] */
    PyObject *readonly; /* truthy: a view call */
} StorageCore;

/* Handed over by configure(); held for the life of the process. */
static PyObject *key_cache;   /* dict: str/bytes key -> its msgpack encoding */
static PyObject *pack;        /* the engine's msgpack Packer.pack */
static PyObject *decode;      /* msgpack.unpackb */
static PyObject *out_of_gas;  /* contracts.engine.errors.OutOfGas */
static long long read_gas, read_byte_gas, write_gas, write_byte_gas, value_bytes_max;
static PyObject *str_get, *str_get_py, *str_assign_py;

/* The gas left, if it is an int that fits in a long long; -1 (no error set) otherwise. */
static int
gas_left_of(PyObject *gas, long long *left)
{
    if (!PyList_CheckExact(gas) || PyList_GET_SIZE(gas) < 1)
        return -1;
    PyObject *g = PyList_GET_ITEM(gas, 0);
    if (!PyLong_CheckExact(g))
        return -1;
    int overflow = 0;
    *left = PyLong_AsLongLongAndOverflow(g, &overflow);
    if (overflow || (*left == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    /* Far below zero (a meter only the Python path should handle): keeps `left - cost`
       clear of overflow. */
    return *left < -(1LL << 62) ? -1 : 0;
}

static int
gas_left(StorageCore *self, long long *left)
{
    return gas_left_of(self->gas, left);
}

/* gas[0] = left - cost; raises OutOfGas (returns -1) if that is below zero.
 * left >= -2**62 (gas_left) and 0 <= cost < 2**62 here (prices <= 2**20, sizes < 2**40),
 * so the subtraction cannot overflow. */
static int
charge(StorageCore *self, long long left, long long cost)
{
    PyObject *v = PyLong_FromLongLong(left - cost);
    if (v == NULL)
        return -1;
    /* PyList_SetItem steals v and releases the old value. */
    if (PyList_SetItem(self->gas, 0, v) < 0)
        return -1;
    if (left - cost < 0) {
        PyErr_SetString(out_of_gas, "out of gas in storage access");
        return -1;
    }
    return 0;
}

/* Whether the fields the fast paths use are set and of the types they assume (host code
 * can delete or replace them; the Python implementation then gives the error). */
static int
fields_ok(StorageCore *self)
{
    return self->writes != NULL && PyDict_CheckExact(self->writes) && self->parent != NULL
           && self->prefix != NULL && PyBytes_CheckExact(self->prefix) && self->gas != NULL
           && self->readonly != NULL;
}

/* The memoised encoding of a str/bytes key, a new reference (the memo may be emptied while
 * it is in use); NULL (no error set) if not memoised. */
static PyObject *
cached_key(PyObject *key)
{
    if (!PyBytes_CheckExact(key) && !PyUnicode_CheckExact(key))
        return NULL;
    PyObject *k = PyDict_GetItemWithError(key_cache, key);
    if (k == NULL || !PyBytes_CheckExact(k)) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(k);
    return k;
}

/* prefix + k, as a new bytes object. */
static PyObject *
full_key(PyObject *prefix, PyObject *k)
{
    Py_ssize_t np = PyBytes_GET_SIZE(prefix), nk = PyBytes_GET_SIZE(k);
    PyObject *fk = PyBytes_FromStringAndSize(NULL, np + nk);
    if (fk != NULL) {
        memcpy(PyBytes_AS_STRING(fk), PyBytes_AS_STRING(prefix), np);
        memcpy(PyBytes_AS_STRING(fk) + np, PyBytes_AS_STRING(k), nk);
    }
    return fk;
}

/* The Python implementation, called exactly as this method was called. */
static PyObject *
forward(PyObject *self, PyObject *name, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[4];
    PyObject **all = n + 1 <= 4 ? small : PyMem_New(PyObject *, n + 1);
    if (all == NULL)
        return PyErr_NoMemory();
    all[0] = self;
    for (Py_ssize_t i = 0; i < n; i++)
        all[i + 1] = args[i];
    PyObject *r = PyObject_VectorcallMethod(name, all, nargs + 1, kwnames);
    if (all != small)
        PyMem_Free(all);
    return r;
}

static PyObject *
storage_get(StorageCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1 || nargs > 2 || (kwnames && PyTuple_GET_SIZE(kwnames)) || !fields_ok(self))
        return forward((PyObject *)self, str_get_py, args, nargs, kwnames);
    PyObject *key = args[0];
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    long long left;
    PyObject *k = cached_key(key);
    if (k == NULL)
        return forward((PyObject *)self, str_get_py, args, nargs, NULL);
    if (gas_left(self, &left) < 0) {
        Py_DECREF(k);
        return forward((PyObject *)self, str_get_py, args, nargs, NULL);
    }
    PyObject *fk = full_key(self->prefix, k);
    if (fk == NULL) {
        Py_DECREF(k);
        return NULL;
    }
    PyObject *data = NULL;
    if (PyDict_GET_SIZE(self->writes)) {
        data = PyDict_GetItemWithError(self->writes, fk);
        if (data == NULL && PyErr_Occurred()) {
            Py_DECREF(fk);
            Py_DECREF(k);
            return NULL;
        }
        Py_XINCREF(data);
    }
    if (data == NULL) {
        PyObject *margs[2] = {self->parent, fk};
        data = PyObject_VectorcallMethod(str_get, margs, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(fk);
    long long n = PyBytes_GET_SIZE(k);
    Py_DECREF(k);
    if (data == NULL)
        return NULL;
    /* Read the meter again: the parent's get is Python code that could have moved it. */
    if (!fields_ok(self) || gas_left(self, &left) < 0) {
        Py_DECREF(data);
        return forward((PyObject *)self, str_get_py, args, nargs, NULL);
    }
    if (data == Py_None) {
        Py_DECREF(data);
        if (charge(self, left, read_gas + read_byte_gas * n) < 0)
            return NULL;
        Py_INCREF(dflt);
        return dflt;
    }
    Py_ssize_t size = PyObject_Size(data);
    if (size < 0) {
        Py_DECREF(data);
        return NULL;
    }
    if (size > (1LL << 40)) {  /* keeps the cost arithmetic clear of overflow (see charge) */
        Py_DECREF(data);
        return forward((PyObject *)self, str_get_py, args, nargs, NULL);
    }
    if (charge(self, left, read_gas + read_byte_gas * (n + size)) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    PyObject *value = PyObject_CallOneArg(decode, data);
    Py_DECREF(data);
    return value;
}

/* Whether v is an int within msgpack's range (-2**63 .. 2**64-1); -1 on error. */
static int
int_fits(PyObject *v)
{
    int overflow = 0;
    PyLong_AsLongLongAndOverflow(v, &overflow);
    if (PyErr_Occurred())
        return -1;
    if (overflow == 0)
        return 1;
    if (overflow < 0)
        return 0;
    PyLong_AsUnsignedLongLong(v);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static PyObject *
storage_assign(StorageCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 2 || (kwnames && PyTuple_GET_SIZE(kwnames)) || !fields_ok(self))
        return forward((PyObject *)self, str_assign_py, args, nargs, kwnames);
    PyObject *value = args[0], *key = args[1];
    int ro = PyObject_IsTrue(self->readonly);
    if (ro < 0)
        return NULL;
    int scalar = PyBytes_CheckExact(value) || PyUnicode_CheckExact(value) || PyBool_Check(value)
                 || value == Py_None;
    if (!scalar && PyLong_CheckExact(value)) {
        scalar = int_fits(value);
        if (scalar < 0)
            return NULL;
    }
    long long left;
    if (ro || !scalar || gas_left(self, &left) < 0)
        return forward((PyObject *)self, str_assign_py, args, nargs, NULL);
    PyObject *k = cached_key(key);
    if (k == NULL)
        return forward((PyObject *)self, str_assign_py, args, nargs, NULL);
    PyObject *data = PyObject_CallOneArg(pack, value);
    if (data == NULL) {
        Py_DECREF(k);
        return NULL;
    }
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > value_bytes_max) {
        Py_DECREF(data);
        Py_DECREF(k);
        return forward((PyObject *)self, str_assign_py, args, nargs, NULL);
    }
    PyObject *fk = NULL;
    int rc = charge(self, left, write_gas + write_byte_gas * (PyBytes_GET_SIZE(k) + PyBytes_GET_SIZE(data)));
    if (rc == 0) {
        fk = full_key(self->prefix, k);
        rc = fk == NULL ? -1 : PyDict_SetItem(self->writes, fk, data);
    }
    Py_XDECREF(fk);
    Py_DECREF(data);
    Py_DECREF(k);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* store.py's Storage.repoint when this base is not built: the engine re-points its reused
 * top-level storage on every call, and three field stores cost less than a Python frame. */
static PyObject *
storage_repoint(StorageCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "repoint(parent, prefix, readonly) takes 3 arguments (%zd given)",
                            nargs);
    Py_INCREF(args[0]);
    Py_XSETREF(self->parent, args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(self->prefix, args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(self->readonly, args[2]);
    Py_RETURN_NONE;
}

static int
storage_init(StorageCore *self, PyObject *args, PyObject *kwds)
{
    PyObject *buf, *prefix, *gas, *readonly;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Storage(buf, prefix, gas, readonly) takes positional arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOO:Storage", &buf, &prefix, &gas, &readonly))
        return -1;
    PyObject *writes = PyObject_GetAttrString(buf, "writes");
    if (writes == NULL)
        return -1;
    PyObject *parent = PyObject_GetAttrString(buf, "parent");
    if (parent == NULL) {
        Py_DECREF(writes);
        return -1;
    }
    Py_INCREF(buf);
    Py_XSETREF(self->buf, buf);
    Py_XSETREF(self->writes, writes);
    Py_XSETREF(self->parent, parent);
    Py_INCREF(prefix);
    Py_XSETREF(self->prefix, prefix);
    Py_INCREF(gas);
    Py_XSETREF(self->gas, gas);
    Py_INCREF(readonly);
    Py_XSETREF(self->readonly, readonly);
    return 0;
}

static int
storage_traverse(StorageCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->buf);
    Py_VISIT(self->writes);
    Py_VISIT(self->parent);
    Py_VISIT(self->prefix);
    Py_VISIT(self->gas);
    Py_VISIT(self->readonly);
    return 0;
}

static int
storage_clear(StorageCore *self)
{
    Py_CLEAR(self->buf);
    Py_CLEAR(self->writes);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->gas);
    Py_CLEAR(self->readonly);
    return 0;
}

static void
storage_dealloc(StorageCore *self)
{
    PyObject_GC_UnTrack(self);
    storage_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef storage_methods[] = {
    {"get", (PyCFunction)(void (*)(void))storage_get, METH_FASTCALL | METH_KEYWORDS, "get(key, default=None)"},
    {"_assign", (PyCFunction)(void (*)(void))storage_assign, METH_FASTCALL | METH_KEYWORDS, "_assign(value, key)"},
    {"repoint", (PyCFunction)(void (*)(void))storage_repoint, METH_FASTCALL, "repoint(parent, prefix, readonly)"},
    {NULL},
};

/* T_OBJECT_EX: reading an unset field raises AttributeError instead of returning None. */
static PyMemberDef storage_members[] = {
    {"_buf", T_OBJECT_EX, offsetof(StorageCore, buf), 0, NULL},
    {"_writes", T_OBJECT_EX, offsetof(StorageCore, writes), 0, NULL},
    {"_parent", T_OBJECT_EX, offsetof(StorageCore, parent), 0, NULL},
    {"_prefix", T_OBJECT_EX, offsetof(StorageCore, prefix), 0, NULL},
    {"_gas", T_OBJECT_EX, offsetof(StorageCore, gas), 0, NULL},
    {"_readonly", T_OBJECT_EX, offsetof(StorageCore, readonly), 0, NULL},
    {NULL},
};

static PyTypeObject StorageCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "contracts.engine._speedups.StorageCore",
    .tp_basicsize = sizeof(StorageCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fast accessors of contracts.engine.store.Storage.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)storage_init,
    .tp_traverse = (traverseproc)storage_traverse,
    .tp_clear = (inquiry)storage_clear,
    .tp_dealloc = (destructor)storage_dealloc,
    .tp_methods = storage_methods,
    .tp_members = storage_members,
};


/* ---- events: `_emit_("Name", {"field": value, ...})` -------------------------------------
 *
 * The compiler's form of `emit` with a constant name and explicit field names (the name and
 * field names were checked at compile time; `fields` is a fresh dict). runtime.py's
 * `_emit_` is the reference and runs for everything but the common case: a writable frame,
 * scalar fields that msgpack packs, every limit and the meter within bounds. The Emitter
 * decides that before it changes anything, then does what `_emit_` does, in the same order.
 */

/* The indices of the call frame's fields this file reads: a frame is a list laid out as
 * contracts/engine/frame.py says, under these names. The module exposes them as
 * FRAME_LAYOUT, which the engine checks against frame.py's when it imports this module. */
#define FRAME_CONTRACT 0
#define FRAME_EVENTS 1
#define FRAME_READONLY 2
#define FRAME_SIZE 5

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *rt;        /* the Runtime: events_total, event_bytes */
    PyObject *frames;    /* rt.frames: one frame (a list, see FRAME_SIZE) per call */
    PyObject *gas;       /* rt.gas */
    PyObject *pack;      /* the engine's Packer.pack */
    PyObject *event;     /* the Event NamedTuple type */
    PyObject *fallback;  /* runtime.py's _emit_ */
    long long events_max, event_bytes_max, tx_event_bytes_max, event_gas, event_byte_gas;
} Emitter;

static PyObject *str_events_total, *str_event_bytes;

/* An attribute of the runtime that must be a small non-negative int; -1 (no error) if not. */
static long long
counter(PyObject *rt, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(rt, name);
    if (v == NULL) {
        PyErr_Clear();
        return -1;
    }
    long long n = PyLong_CheckExact(v) ? PyLong_AsLongLong(v) : -1;
    Py_DECREF(v);
    if (n == -1)
        PyErr_Clear();
    return n < 0 || n > (1LL << 40) ? -1 : n;
}

static PyObject *emit_into(Emitter *self, PyObject *frame, PyObject *const *args, size_t nargsf);

static PyObject *
emitter_call(Emitter *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames && PyTuple_GET_SIZE(kwnames)))
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    PyObject *fields = args[1];
    PyObject *frame = NULL;
    if (PyList_CheckExact(self->frames) && PyList_GET_SIZE(self->frames) > 0)
        frame = PyList_GET_ITEM(self->frames, PyList_GET_SIZE(self->frames) - 1);
    if (out_of_gas == NULL || frame == NULL || !PyList_CheckExact(frame) || PyList_GET_SIZE(frame) != FRAME_SIZE
        || !PyList_CheckExact(PyList_GET_ITEM(frame, FRAME_EVENTS))
        || PyList_GET_ITEM(frame, FRAME_READONLY) != Py_False || !PyDict_CheckExact(fields))
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    /* Held while in use, though nothing below runs Python code that could pop it. */
    Py_INCREF(frame);
    PyObject *r = emit_into(self, frame, args, nargsf);
    Py_DECREF(frame);
    return r;
}

/* emitter_call, once the frame is known to be a writable one. */
static PyObject *
emit_into(Emitter *self, PyObject *frame, PyObject *const *args, size_t nargsf)
{
    PyObject *name = args[0], *fields = args[1], *kwnames = NULL;
    long long count = counter(self->rt, str_events_total);
    long long total = counter(self->rt, str_event_bytes);
    if (count < 0 || total < 0 || count >= self->events_max)
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(fields, &pos, &k, &v)) {
        if (!(PyLong_CheckExact(v) || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v) || PyBool_Check(v)
              || v == Py_None))
            return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    PyObject *packed = PyObject_CallOneArg(self->pack, fields);
    if (packed == NULL) {  /* an int outside 64 bits, say: the reference raises the right error */
        PyErr_Clear();
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    Py_ssize_t size = PyBytes_Check(packed) ? PyBytes_GET_SIZE(packed) : -1;
    Py_DECREF(packed);
    long long left;
    if (size < 0 || size > self->event_bytes_max || total + size > self->tx_event_bytes_max
        || gas_left_of(self->gas, &left) < 0)
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    long long cost = self->event_gas + self->event_byte_gas * size;
    PyObject *g = PyLong_FromLongLong(left - cost);
    if (g == NULL || PyList_SetItem(self->gas, 0, g) < 0)
        return NULL;
    if (left - cost < 0) {
        PyErr_SetString(out_of_gas, "out of gas");
        return NULL;
    }
    PyObject *n1 = PyLong_FromLongLong(count + 1);
    if (n1 == NULL)
        return NULL;
    int rc = PyObject_SetAttr(self->rt, str_events_total, n1);
    Py_DECREF(n1);
    if (rc < 0)
        return NULL;
    PyObject *n2 = PyLong_FromLongLong(total + size);
    if (n2 == NULL)
        return NULL;
    rc = PyObject_SetAttr(self->rt, str_event_bytes, n2);
    Py_DECREF(n2);
    if (rc < 0)
        return NULL;
    /* tuple.__new__(Event, (address, name, fields)), as model.make_event does */
    PyObject *triple = PyTuple_Pack(3, PyList_GET_ITEM(frame, FRAME_CONTRACT), name, fields);
    if (triple == NULL)
        return NULL;
    PyObject *targs = PyTuple_Pack(1, triple);
    Py_DECREF(triple);
    if (targs == NULL)
        return NULL;
    PyObject *ev = PyTuple_Type.tp_new((PyTypeObject *)self->event, targs, NULL);
    Py_DECREF(targs);
    if (ev == NULL)
        return NULL;
    rc = PyList_Append(PyList_GET_ITEM(frame, FRAME_EVENTS), ev);
    Py_DECREF(ev);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
emitter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *rt, *frames, *gas, *pk, *event, *fallback;
    long long emax, ebmax, txmax, eg, ebg;
    if (!PyArg_ParseTuple(args, "OO!O!OO!OLLLLL:Emitter", &rt, &PyList_Type, &frames, &PyList_Type, &gas, &pk,
                          &PyType_Type, &event, &fallback, &emax, &ebmax, &txmax, &eg, &ebg))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)event, &PyTuple_Type))
        return PyErr_Format(PyExc_TypeError, "Emitter: the event type must be a tuple type");
    if (emax < 0 || ebmax < 0 || txmax < 0 || eg < 0 || ebg < 0 || emax > 1LL << 30 || ebmax > 1LL << 30
        || txmax > 1LL << 30 || eg > 1LL << 20 || ebg > 1LL << 20)
        return PyErr_Format(PyExc_ValueError, "Emitter: limits or prices out of range");
    Emitter *self = (Emitter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)emitter_call;
    Py_INCREF(rt);
    self->rt = rt;
    Py_INCREF(frames);
    self->frames = frames;
    Py_INCREF(gas);
    self->gas = gas;
    Py_INCREF(pk);
    self->pack = pk;
    Py_INCREF(event);
    self->event = event;
    Py_INCREF(fallback);
    self->fallback = fallback;
    self->events_max = emax;
    self->event_bytes_max = ebmax;
    self->tx_event_bytes_max = txmax;
    self->event_gas = eg;
    self->event_byte_gas = ebg;
    return (PyObject *)self;
}

static int
emitter_traverse(Emitter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rt);
    Py_VISIT(self->frames);
    Py_VISIT(self->gas);
    Py_VISIT(self->pack);
    Py_VISIT(self->event);
    Py_VISIT(self->fallback);
    return 0;
}

static int
emitter_clear(Emitter *self)
{
    Py_CLEAR(self->rt);
    Py_CLEAR(self->frames);
    Py_CLEAR(self->gas);
    Py_CLEAR(self->pack);
    Py_CLEAR(self->event);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
emitter_dealloc(Emitter *self)
{
    PyObject_GC_UnTrack(self);
    emitter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef emitter_members[] = {
    {"fallback", T_OBJECT_EX, offsetof(Emitter, fallback), READONLY, "the reference implementation"},
    {NULL},
};

static PyTypeObject EmitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "contracts.engine._speedups.Emitter",
    .tp_basicsize = sizeof(Emitter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The fast path of runtime.py's _emit_.",
    .tp_new = emitter_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Emitter, vectorcall),
    .tp_traverse = (traverseproc)emitter_traverse,
    .tp_clear = (inquiry)emitter_clear,
    .tp_dealloc = (destructor)emitter_dealloc,
    .tp_members = emitter_members,
};

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *cache, *pk, *dec, *oog;
    long long rg, rbg, wg, wbg, vmax;
    if (!PyArg_ParseTuple(args, "O!OOOLLLLL:configure", &PyDict_Type, &cache, &pk, &dec, &oog,
                          &rg, &rbg, &wg, &wbg, &vmax))
        return NULL;
    /* Prices are small constants; bound them so cost arithmetic cannot overflow. */
    if (rg < 0 || rbg < 0 || wg < 0 || wbg < 0 || vmax < 0 || rg > 1LL << 20 || rbg > 1LL << 20
        || wg > 1LL << 20 || wbg > 1LL << 20 || vmax > 1LL << 30)
        return PyErr_Format(PyExc_ValueError, "gas prices out of range");
    Py_INCREF(cache);
    Py_XSETREF(key_cache, cache);
    Py_INCREF(pk);
    Py_XSETREF(pack, pk);
    Py_INCREF(dec);
    Py_XSETREF(decode, dec);
    Py_INCREF(oog);
    Py_XSETREF(out_of_gas, oog);
    read_gas = rg;
    read_byte_gas = rbg;
    write_gas = wg;
    write_byte_gas = wbg;
    value_bytes_max = vmax;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(key_cache, pack, decode, OutOfGas, read_gas, read_byte_gas, write_gas, "
     "write_byte_gas, value_bytes_max)"},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "contracts.engine._speedups", NULL, -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_get = PyUnicode_InternFromString("get");
    str_get_py = PyUnicode_InternFromString("_get_py");
    str_assign_py = PyUnicode_InternFromString("_assign_py");
    if (str_get == NULL || str_get_py == NULL || str_assign_py == NULL)
        return NULL;
    str_events_total = PyUnicode_InternFromString("events_total");
    str_event_bytes = PyUnicode_InternFromString("event_bytes");
    if (str_events_total == NULL || str_event_bytes == NULL)
        return NULL;
    if (PyType_Ready(&StorageCoreType) < 0 || PyType_Ready(&EmitterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&StorageCoreType);
    if (PyModule_AddObject(m, "StorageCore", (PyObject *)&StorageCoreType) < 0) {
        Py_DECREF(&StorageCoreType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EmitterType);
    if (PyModule_AddObject(m, "Emitter", (PyObject *)&EmitterType) < 0) {
        Py_DECREF(&EmitterType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *layout = Py_BuildValue("{sisisisi}", "FRAME_CONTRACT", FRAME_CONTRACT, "FRAME_EVENTS", FRAME_EVENTS,
                                     "FRAME_READONLY", FRAME_READONLY, "FRAME_SIZE", FRAME_SIZE);
    if (layout == NULL || PyModule_AddObject(m, "FRAME_LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
