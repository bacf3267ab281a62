"""TensorFlow checkpoints, as tf.compat.v1.train's Saver, latest_checkpoint,
init_from_checkpoint, list_variables, load_variable and load_checkpoint.

Checkpoints are TensorFlow's own files (the V2 format: PREFIX.index, a
LevelDB-format table of tensor entries, and PREFIX.data-00000-of-00001,
the tensors' bytes), plus the `checkpoint` state file naming the latest
ones: TensorFlow reads what Saver writes, and Saver.restore,
init_from_checkpoint and load_variable read what TensorFlow's Saver wrote
(any number of data files, partitioned variables saved in slices).

    saver = vs.train.Saver(max_to_keep=5)
    path = saver.save(None, "/ckpt/model.ckpt", global_step=step)
    saver.restore(None, vs.train.latest_checkpoint("/ckpt"))
    vs.train.init_from_checkpoint("/tf_model", {"old_scope/": "new_scope/"})

Reads and writes go through the default client. A Saver reads the
variables in batches of at most BATCH_BYTES (a batch_read each). On a
cluster it reads them all at one consistent cut: every shard paused
(changes held back, which workers retry), the steps split over shards that
some shards applied completed, then every variable (and the global step)
read, then the shards resumed, then the files written; so a checkpoint taken
while workers train holds one global step. That needs the admin role, and
the reads must end within CUT_LEASE seconds. A restore assigns in batches,
each atomic per shard.
"""

import math
import os
import time

import numpy as np

from varscope import _varscope
from varscope import client
from varscope import dtypes
from varscope import errors
from varscope import variable_scope
from varscope import variables as variables_lib
from varscope.tensor_shape import TensorShape

# The largest batch of variables a Saver reads or assigns in one call; a
# larger variable moves on its own (streamed).
BATCH_BYTES = 64 << 20

_STATE_FILE = "checkpoint"


# Where a checkpoint's tensors come from and go to ---------------------------

class _Part:
    """A variable in the store, and where it sits in the checkpoint tensor
    it is saved as: `start` per axis (None for a whole tensor)."""

    def __init__(self, name, dtype, shape, start=None):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.start = None if start is None else tuple(start)

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.size

    def region(self):
        """The part's index ranges in its checkpoint tensor."""
        start = self.start or (0,) * len(self.shape)
        return tuple(slice(s, s + n) for s, n in zip(start, self.shape))


class _Entry:
    """A checkpoint tensor: its name, full shape and the parts it is saved
    from or restored to (one whole variable, or the parts of a partitioned
    one)."""

    def __init__(self, name, dtype, shape, parts):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.parts = parts

    @property
    def sliced(self):
        return self.parts[0].start is not None


def _handle_parts(variable):
    """The _Parts of a Variable or PartitionedVariable handle."""
    if isinstance(variable, variables_lib.PartitionedVariable):
        return [_handle_parts(part)[0] for part in variable]
    info = variable._impl.slice
    start = None if info is None else info[2]
    return [_Part(variable._shared_name, variable.dtype, variable.shape,
                  start)]


def _entry_for(name, variable):
    """The _Entry saving `variable` (a handle, or a list of part handles)
    under `name`."""
    if isinstance(variable, (list, tuple)):
        parts = [p for v in variable for p in _handle_parts(v)]
    else:
        parts = _handle_parts(variable)
    if len(parts) == 1 and parts[0].start is None:
        return _Entry(name, parts[0].dtype, parts[0].shape, parts)
    first = variable[0] if isinstance(variable, (list, tuple)) else variable
    if isinstance(first, variables_lib.PartitionedVariable):
        shape = first.shape
    else:
        shape = first._impl.slice[1]
    parts.sort(key=lambda p: p.start)
    return _Entry(name, parts[0].dtype, shape, parts)


def _all_entries():
    """An _Entry per variable of the default client's cluster; the parts of
    a partitioned variable as one tensor of its full name."""
    connection = client.default_client()._connection()
    whole, sliced = {}, {}
    for handle in connection.list_handles("", True):
        name, shape = handle.name, list(handle.shape)
        dtype, info = dtypes.as_dtype(handle.dtype), handle.slice
        if info is None:
            whole[name] = _Entry(name, dtype, shape,
                                 [_Part(name, dtype, shape)])
            continue
        full_name, full_shape, offset = info
        entry = sliced.setdefault(
            full_name, _Entry(full_name, dtype, full_shape, []))
        entry.parts.append(_Part(name, dtype, shape, offset))
    for entry in sliced.values():
        entry.parts.sort(key=lambda p: p.start)
    whole.update(sliced)
    return [whole[name] for name in sorted(whole)]


def _entries(var_list):
    """The _Entries of a Saver's var_list (see Saver), in name order."""
    if var_list is None:
        return _all_entries()
    if isinstance(var_list, dict):
        pairs = list(var_list.items())
    else:
        pairs = []
        for variable in var_list:
            if isinstance(variable, variables_lib.PartitionedVariable):
                pairs.append((variable.name, variable))
                continue
            info = variable._impl.slice
            pairs.append((variable._shared_name if info is None else info[0],
                          variable))
    grouped = {}
    for name, variable in pairs:
        entry = _entry_for(name, variable)
        if name in grouped:
            if not (entry.sliced and grouped[name].sliced):
                raise ValueError(
                    "At least two variables have the same name: %s" % name)
            grouped[name].parts += entry.parts
            grouped[name].parts.sort(key=lambda p: p.start)
        else:
            grouped[name] = entry
    return [grouped[name] for name in sorted(grouped)]


def _batches(parts):
    """`parts` in order, grouped into batches of at most BATCH_BYTES (a
    larger part alone)."""
    batch, size = [], 0
    for part in parts:
        if batch and size + part.nbytes > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(part)
        size += part.nbytes
    if batch:
        yield batch


def _store_handle(part, connection=None):
    """The C++ handle of an existing variable (for one too large for a
    batch: Read and Assign stream it), through `connection` (default: the
    default client's)."""
    scope = _varscope.VariableScope()
    scope.reuse = _varscope.Reuse.TRUE
    return _varscope.get_variable(
        connection or client.default_client()._connection(), scope,
        part.name, shape=None,
        dtype=part.dtype.as_datatype_enum, initializer=None, trainable=None,
        partitioner=None)


# How long a Saver's pause of a cluster may last (seconds): the reads of
# every variable must end within it (else errors.AbortedError), and workers
# retry their changes meanwhile (for their retry_timeout, 60 s by default).
CUT_LEASE = 30.0


def _at_one_cut(read):
    """read()'s result, called at one consistent cut of the default client's
    cluster (every shard paused, half-applied steps completed), or at once
    with one server."""
    default = client.default_client()
    connection = default._connection()
    if connection.shard_count() < 2:
        return read()
    result = []
    connection.consistent_cut(lambda paused: result.append(read()),
                              "a Saver checkpoint", CUT_LEASE,
                              default.timeout)
    return result[0]


def _assign_at_one_cut(parts_and_values):
    """_assign of every (part, value) at one consistent cut of the default
    client's cluster: workers' changes wait (and are retried) until every
    value is assigned, so none lands between two shards' assignments."""
    default = client.default_client()
    connection = default._connection()
    if connection.shard_count() < 2:
        _assign(parts_and_values)
        return
    connection.consistent_cut(
        lambda paused: _assign(parts_and_values, connection=paused),
        "a Saver restore", CUT_LEASE, default.timeout)


def _read_parts(parts):
    """{store name: value} of `parts`, a batch read per batch."""
    connection = client.default_client()._connection()
    values = {}
    for batch in _batches(parts):
        client._check_process()
        if len(batch) == 1 and batch[0].nbytes > BATCH_BYTES:
            values[batch[0].name] = _store_handle(batch[0]).read()
            continue
        for name, value, _ in connection.batch_read(
                [p.name for p in batch], ""):
            values[name] = value
    return values


def _assign(parts_and_values, expected_version=None, skip_aborted=False,
            connection=None):
    """Assigns each (_Part, value) in batches of at most BATCH_BYTES, each
    atomic per shard, through `connection` (default: the default client's);
    with `expected_version`, only if every variable of the batch is at that
    version (else errors.AbortedError, or the batch is skipped with
    `skip_aborted`)."""
    connection = connection or client.default_client()._connection()
    values = {part.name: value for part, value in parts_and_values}
    for batch in _batches([part for part, _ in parts_and_values]):
        client._check_process()
        try:
            if len(batch) == 1 and batch[0].nbytes > BATCH_BYTES:
                part = batch[0]
                _store_handle(part, connection).assign(
                    dtypes.to_numpy(values[part.name], part.dtype), False,
                    expected_version)
                continue
            connection.batch_update([_varscope.UpdateSpec(
                part.name, "assign",
                dtypes.to_numpy(values[part.name], part.dtype),
                part.dtype.as_datatype_enum,
                expected_version=expected_version) for part in batch], False)
        except errors.AbortedError:
            if not skip_aborted:
                raise


# Reading checkpoints --------------------------------------------------------

class CheckpointReader:
    """A TensorFlow checkpoint opened for reading, as
    tf.compat.v1.train.NewCheckpointReader's result."""

    def __init__(self, prefix):
        try:
            self._reader = _varscope.BundleReader(prefix)
        except errors.NotFoundError:
            raise ValueError("The passed save_path is not a valid "
                             "checkpoint: %s" % prefix) from None
        self._prefix = prefix
        self._tensors = {name: (dtype, tuple(shape), slices)
                         for name, dtype, shape, slices
                         in self._reader.tensors()}

    def has_tensor(self, name):
        return name in self._tensors

    def get_variable_to_shape_map(self):
        return {name: list(t[1]) for name, t in self._tensors.items()}

    def get_variable_to_dtype_map(self):
        return {name: _bundle_dtype(t[0])
                for name, t in self._tensors.items()}

    def get_tensor(self, name):
        """The whole tensor `name` (assembled from its slices if it was
        saved in slices)."""
        return self.read_region(name, None)

    def _dtype_and_shape(self, name):
        if name not in self._tensors:
            raise errors.NotFoundError(
                None, None, "Key %s not found in checkpoint" % name)
        dtype, shape, _ = self._tensors[name]
        return _bundle_dtype(dtype), shape

    def read_region(self, name, region):
        """The values of tensor `name` in `region` (a tuple of slices, or
        None for all), read from the slices that overlap it when the tensor
        was saved in slices."""
        dtype, shape = self._dtype_and_shape(name)
        _, _, slices = self._tensors[name]
        if region is None:
            region = tuple(slice(0, n) for n in shape)
        if not slices:
            return self._reader.read(name)[region]
        out = np.zeros([r.stop - r.start for r in region],
                       dtype.as_numpy_dtype)
        covered = 0
        for stored in slices:
            lows, highs = [], []
            for axis, r in enumerate(region):
                start, length = stored.start[axis], stored.length[axis]
                if length < 0:
                    start, length = 0, shape[axis]
                lows.append(max(r.start, start))
                highs.append(min(r.stop, start + length))
            if any(lo >= hi for lo, hi in zip(lows, highs)):
                continue
            data = self._reader.read(stored.key(name))
            src = tuple(slice(lo - (s if n >= 0 else 0),
                              hi - (s if n >= 0 else 0))
                        for lo, hi, s, n in zip(lows, highs, stored.start,
                                                stored.length))
            dst = tuple(slice(lo - r.start, hi - r.start)
                        for lo, hi, r in zip(lows, highs, region))
            out[dst] = data[src]
            covered += math.prod(hi - lo for lo, hi in zip(lows, highs))
        if covered != out.size:
            raise errors.DataLossError(
                None, None, "The slices of %s in checkpoint %s do not cover "
                "the part %s of it" % (name, self._prefix, list(region)))
        return out


def _bundle_dtype(dtype_enum):
    try:
        return dtypes.as_dtype(dtype_enum)
    except (TypeError, ValueError):
        return None


def _checkpoint_prefix(ckpt_dir_or_file):
    """The prefix of the latest checkpoint of a directory, or the given
    prefix."""
    ckpt_dir_or_file = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(ckpt_dir_or_file):
        prefix = latest_checkpoint(ckpt_dir_or_file)
        if prefix is None:
            raise ValueError("Couldn't find 'checkpoint' file or checkpoints "
                             "in given directory %s" % ckpt_dir_or_file)
        return prefix
    return ckpt_dir_or_file


def load_checkpoint(ckpt_dir_or_file):
    """A CheckpointReader of the checkpoint, or of a directory's latest."""
    return CheckpointReader(_checkpoint_prefix(ckpt_dir_or_file))


def list_variables(ckpt_dir_or_file):
    """[(name, shape)] of the checkpoint's tensors, in name order."""
    shapes = load_checkpoint(ckpt_dir_or_file).get_variable_to_shape_map()
    return [(name, shapes[name]) for name in sorted(shapes)]


def load_variable(ckpt_dir_or_file, name):
    """The value of tensor `name` of the checkpoint (a numpy array)."""
    if name.endswith(":0"):
        name = name[:-2]
    return load_checkpoint(ckpt_dir_or_file).get_tensor(name)


# The `checkpoint` state file ------------------------------------------------

class CheckpointState:
    """The `checkpoint` file's content (TensorFlow's CheckpointState)."""

    def __init__(self, model_checkpoint_path, all_model_checkpoint_paths):
        self.model_checkpoint_path = model_checkpoint_path
        self.all_model_checkpoint_paths = list(all_model_checkpoint_paths)

    def __repr__(self):
        return "CheckpointState(%r, %r)" % (self.model_checkpoint_path,
                                            self.all_model_checkpoint_paths)


def _quote(text):
    """A protobuf text-format string literal."""
    escaped = text.encode("utf-8").decode("latin-1")
    for char, escape in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n")):
        escaped = escaped.replace(char, escape)
    return '"%s"' % escaped


def _unquote(literal):
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in "\"'":
        raise ValueError("not a string literal: %s" % literal)
    raw = literal[1:-1].encode("latin-1").decode("unicode_escape")
    return raw.encode("latin-1").decode("utf-8")


def get_checkpoint_state(checkpoint_dir, latest_filename=None):
    """The CheckpointState of `checkpoint_dir`'s state file (paths made
    absolute under the directory), or None if there is none or it does not
    parse."""
    path = os.path.join(os.fspath(checkpoint_dir),
                        latest_filename or _STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    model, paths = "", []
    try:
        for line in lines:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model_checkpoint_path":
                model = _unquote(value)
            elif key == "all_model_checkpoint_paths":
                paths.append(_unquote(value))
    except (ValueError, UnicodeError):
        return None
    if not model:
        raise ValueError("Invalid checkpoint state loaded from %s"
                         % checkpoint_dir)

    def absolute(p):
        return p if os.path.isabs(p) else os.path.join(checkpoint_dir, p)
    return CheckpointState(absolute(model), [absolute(p) for p in paths])


def update_checkpoint_state(save_dir, model_checkpoint_path,
                            all_model_checkpoint_paths=None,
                            latest_filename=None, save_relative_paths=False):
    """Writes `save_dir`'s state file atomically (a temporary file renamed
    over it). Paths under a relative `save_dir`, or all of them with
    `save_relative_paths`, are written relative to it, as TensorFlow
    does."""
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)

    def written(p):
        if save_relative_paths and os.path.isabs(p):
            return os.path.relpath(p, save_dir)
        if not os.path.isabs(save_dir) and not os.path.isabs(p):
            return os.path.relpath(p, save_dir)
        return p
    path = os.path.join(save_dir, latest_filename or _STATE_FILE)
    if os.path.abspath(path) == os.path.abspath(model_checkpoint_path):
        raise RuntimeError(
            "Save path '%s' conflicts with path used for checkpoint state.  "
            "Please use a different save path." % model_checkpoint_path)
    text = "model_checkpoint_path: %s\n" % _quote(
        written(model_checkpoint_path))
    text += "".join("all_model_checkpoint_paths: %s\n" % _quote(written(p))
                    for p in paths)
    temp = "%s.tmp%d" % (path, os.getpid())
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temp, path)


def checkpoint_exists(checkpoint_prefix):
    """Whether a checkpoint with this prefix exists (its index does)."""
    return os.path.exists(os.fspath(checkpoint_prefix) + ".index")


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """The prefix of the newest checkpoint the state file of
    `checkpoint_dir` names, or None if there is none or its files are
    gone."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not checkpoint_exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path


def remove_checkpoint(checkpoint_prefix, meta_graph_suffix="meta"):
    """Deletes a checkpoint's files (index, data files, meta graph)."""
    prefix = os.fspath(checkpoint_prefix)
    directory = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix)
    for name in os.listdir(directory):
        if (name in (base + ".index", base + "." + meta_graph_suffix) or
                name.startswith(base + ".data-")):
            os.remove(os.path.join(directory, name))


# Saver ----------------------------------------------------------------------

class Saver:
    """Saves and restores variables as TensorFlow checkpoints, as
    tf.compat.v1.train.Saver.

    var_list: None (every variable of the cluster, listed at each save and
    restore), a list of Variables and PartitionedVariables (a part alone is
    saved as a slice of its whole, as TensorFlow saves a partitioned
    variable), or a dict from checkpoint names to variables (or lists of
    parts). max_to_keep: how many recent checkpoints to keep (None or 0:
    all); keep_checkpoint_every_n_hours: keep one more every N hours.

    Departures: sessions are not needed (pass None); no meta graph file is
    written (there is no graph; TensorFlow restores and warm-starts without
    it); checkpoints are always the V2 format in one data file (sharded is
    accepted, and one file written); reshape, saver_def and builder are not
    supported (NotImplementedError).
    """

    def __init__(self, var_list=None, reshape=False, sharded=False,
                 max_to_keep=5, keep_checkpoint_every_n_hours=10000.0,
                 name=None, restore_sequentially=False, saver_def=None,
                 builder=None, defer_build=False, allow_empty=False,
                 write_version=2, pad_step_number=False,
                 save_relative_paths=False, filename=None):
        for argument, value in (("reshape", reshape), ("saver_def", saver_def),
                                ("builder", builder)):
            if value:
                raise NotImplementedError(
                    "Varscope's Saver does not support the %s argument."
                    % argument)
        if write_version != 2:
            raise ValueError("Varscope writes checkpoints of the V2 format "
                             "only (write_version=2)")
        if var_list is not None and not var_list and not allow_empty:
            raise ValueError("No variables to save")
        self._var_list = var_list
        self._max_to_keep = max_to_keep
        self._keep_every = keep_checkpoint_every_n_hours
        self._next_keep_time = time.time() + keep_checkpoint_every_n_hours * 3600
        self._pad_step_number = pad_step_number
        self._save_relative_paths = save_relative_paths
        self._last_checkpoints = []  # (prefix, time), oldest first
        self._to_delete = []

    @property
    def last_checkpoints(self):
        """The prefixes of the checkpoints kept, oldest first."""
        return [p for p, _ in self._last_checkpoints]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time):
        self._last_checkpoints = list(last_checkpoints_with_time)

    def recover_last_checkpoints(self, checkpoint_paths):
        """Takes up `checkpoint_paths` (e.g. a state file's
        all_model_checkpoint_paths) as the kept checkpoints, with their index
        files' modification times, so that max_to_keep prunes them too."""
        kept = []
        for path in checkpoint_paths:
            try:
                kept.append((path, os.path.getmtime(path + ".index")))
            except OSError:
                continue
        self._last_checkpoints = kept

    def save(self, sess, save_path, global_step=None, latest_filename=None,
             meta_graph_suffix="meta", write_meta_graph=True,
             write_state=True, strip_default_attrs=False,
             save_debug_info=False):
        """Writes a checkpoint of the variables at `save_path` (with
        "-<global_step>" appended when given: an int, or the global step
        Variable, whose value is read); returns its prefix. Updates the state
        file in its directory and deletes checkpoints beyond max_to_keep.

        Raises ValueError if the directory does not exist.
        """
        save_path = os.fspath(save_path)
        latest_filename = latest_filename or _STATE_FILE
        if os.path.split(latest_filename)[0]:
            raise ValueError("'latest_filename' must not contain path "
                             "components")
        if (global_step is None and
                os.path.basename(save_path) == latest_filename):
            raise ValueError(
                "'latest_filename' collides with 'save_path': '%s' and "
                "'%s'" % (latest_filename, save_path))
        save_dir = os.path.dirname(save_path)
        if not os.path.isdir(save_dir or "."):
            raise ValueError("Parent directory of %s doesn't exist, can't "
                             "save." % save_path)
        entries = _entries(self._var_list)
        parts = [part for entry in entries for part in entry.parts]
        entry_of = {part.name: entry for entry in entries
                    for part in entry.parts}

        def read():
            step = global_step
            if step is not None and not isinstance(step, (int, np.integer)):
                step = int(np.asarray(step.read()))
            return _read_parts(parts), step

        values, global_step = _at_one_cut(read)
        prefix = save_path
        if global_step is not None:
            prefix = "%s-%s" % (save_path, (
                "{:08d}" if self._pad_step_number else "{:d}").format(
                    int(global_step)))
        writer = _varscope.BundleWriter(prefix)
        for part in parts:
            entry = entry_of[part.name]
            dtype = entry.dtype.as_datatype_enum
            value = values.pop(part.name)
            if part.start is None:
                writer.add(entry.name, value, dtype)
            else:
                writer.add_slice(
                    entry.name, list(entry.shape),
                    _varscope.BundleSlice(list(part.start), list(part.shape)),
                    value, dtype)
        writer.finish()
        if write_state:
            self._record(prefix)
            update_checkpoint_state(save_dir, prefix, self.last_checkpoints,
                                    latest_filename,
                                    self._save_relative_paths)
            self._delete_old(meta_graph_suffix)
        return prefix

    def _record(self, prefix):
        """Adds `prefix` to the kept checkpoints; the oldest beyond
        max_to_keep goes to the ones to delete."""
        if not self._max_to_keep:
            return
        self._last_checkpoints = [
            p for p in self._last_checkpoints if p[0] != prefix]
        self._last_checkpoints.append((prefix, time.time()))
        if len(self._last_checkpoints) > self._max_to_keep:
            self._to_delete.append(self._last_checkpoints.pop(0))

    def _delete_old(self, meta_graph_suffix):
        """Deletes the checkpoints dropped from the kept ones, but one every
        keep_checkpoint_every_n_hours."""
        while self._to_delete:
            path, saved_at = self._to_delete.pop(0)
            if saved_at > self._next_keep_time:
                self._next_keep_time += self._keep_every * 3600
                continue
            remove_checkpoint(path, meta_graph_suffix)

    def restore(self, sess, save_path):
        """Assigns every variable of var_list its value in the checkpoint at
        `save_path` (a prefix, e.g. from latest_checkpoint).

        Everything is checked before anything is assigned: ValueError if
        there is no checkpoint there; errors.NotFoundError if it lacks a
        variable; errors.InvalidArgumentError for a shape or dtype that
        differs. On a cluster every value is assigned at one consistent
        cut (every shard paused; workers' changes wait and are retried), so
        workers training meanwhile go on from the restored step as a whole;
        the assignments must end within CUT_LEASE.
        """
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        reader = CheckpointReader(os.fspath(save_path))
        entries = _entries(self._var_list)
        for entry in entries:
            _check_restorable(reader, entry.name, entry.dtype, entry.shape,
                              variable_name=entry.name)
        _assign_at_one_cut(
            [(part, reader.read_region(entry.name, part.region()))
             for entry in entries for part in entry.parts])


def _check_restorable(reader, tensor_name, dtype, shape, variable_name):
    if not reader.has_tensor(tensor_name):
        raise errors.NotFoundError(
            None, None, "Restoring from checkpoint failed. This is most "
            "likely due to a Variable name or other graph key that is missing "
            "from the checkpoint. Please ensure that you have not altered the "
            "graph expected based on the checkpoint. Original error:\n\n"
            "Key %s not found in checkpoint" % tensor_name)
    stored_dtype, stored_shape = reader._dtype_and_shape(tensor_name)
    if stored_dtype != dtype:
        raise errors.InvalidArgumentError(
            None, None, "tensor_name = %s; expected dtype %s does not equal "
            "original dtype %s" % (tensor_name, dtype.name,
                                   getattr(stored_dtype, "name", "unknown")))
    if tuple(stored_shape) != tuple(shape):
        raise errors.InvalidArgumentError(
            None, None, "Cannot restore %s from tensor %s of the checkpoint: "
            "the variable has shape %s, the checkpoint's tensor %s"
            % (variable_name, tensor_name, TensorShape(shape),
               TensorShape(stored_shape)))


# init_from_checkpoint -------------------------------------------------------

def _is_handle(x):
    return isinstance(x, (variables_lib.Variable,
                          variables_lib.PartitionedVariable))


def _stored(name, store):
    """The handle of `name` in this process's store, or the list of its
    parts if it is partitioned, or None."""
    if name in store:
        return store[name]
    parts = []
    while "%s/part_%d" % (name, len(parts)) in store:
        parts.append(store["%s/part_%d" % (name, len(parts))])
    return parts or None


def init_from_checkpoint(ckpt_dir_or_file, assignment_map):
    """Initializes variables from a TensorFlow checkpoint, as
    tf.compat.v1.train.init_from_checkpoint, with its assignment_map rules:

      'checkpoint_scope/': 'scope/'  every variable under scope/ that this
                          process got with get_variable, from the tensor of
                          the same name under checkpoint_scope/;
      '/': 'scope/'       the same, from the checkpoint's root;
      'ckpt/name': 'scope/name', or a Variable, a PartitionedVariable or a
                          list of its parts: that variable.
    A partitioned variable (name or parts) takes its parts' slices of the
    tensor, saved whole or in slices of any partitioning.

    As in TensorFlow, this replaces the variables' initial values, so it
    loads a variable only if nothing changed it since its creation (its
    version is still 1): the first worker to call it loads the values, a
    worker restarting later in training leaves the trained values alone.
    Call it right after creating the variables, before training steps.

    Raises ValueError (TensorFlow's texts) for a missing checkpoint or
    tensor, a shape that differs, or a scope mapping to a name.
    """
    prefix = _checkpoint_prefix(ckpt_dir_or_file)
    reader = CheckpointReader(prefix)
    variable_map = reader.get_variable_to_shape_map()
    store = variable_scope.variable_store()
    if isinstance(assignment_map, dict):
        assignment_map = assignment_map.items()
    targets = []  # (tensor name, handle or list of part handles)
    for tensor_name, current in sorted(assignment_map, key=lambda p: p[0]):
        if _is_handle(current) or (isinstance(current, list) and current and
                                   all(_is_handle(v) for v in current)):
            var = current
        else:
            var = _stored(current, store)
        if var is not None:
            if tensor_name not in variable_map:
                raise ValueError("Tensor %s is not found in %s checkpoint %s"
                                 % (tensor_name, ckpt_dir_or_file,
                                    variable_map))
            targets.append((tensor_name, var))
            continue
        scopes = current[:current.rindex("/")] if "/" in current else ""
        if not tensor_name.endswith("/"):
            raise ValueError(
                "Assignment map with scope only name {} should map to scope "
                "only {}. Should be 'scope/': 'other_scope/'.".format(
                    scopes, tensor_name))
        names = set()
        for name in store:
            if not scopes or name.startswith(scopes + "/"):
                if "/part_" in name:
                    name = name[:name.index("/part_")]
                names.add(name)
        for name in sorted(names):
            full_tensor_name = name[len(scopes):]
            if current != "/":
                full_tensor_name = full_tensor_name[1:]
            if tensor_name != "/":
                full_tensor_name = tensor_name + full_tensor_name
            if full_tensor_name.endswith("/"):
                full_tensor_name = full_tensor_name[:-1]
            if full_tensor_name not in variable_map:
                raise ValueError(
                    "Tensor %s (%s in %s) is not found in %s checkpoint"
                    % (full_tensor_name, name[len(scopes) + 1:], tensor_name,
                       ckpt_dir_or_file))
            targets.append((full_tensor_name, _stored(name, store)))
    loads = []  # per target, [(_Part, value)]
    for tensor_name, var in targets:
        entry = _entry_for(tensor_name, var)
        stored_dtype, stored_shape = reader._dtype_and_shape(tensor_name)
        if tuple(stored_shape) != entry.shape:
            raise ValueError(
                "Shape of variable %s (%s) doesn't match with shape of tensor "
                "%s (%s) from checkpoint reader." % (
                    _display_name(var), TensorShape(entry.shape), tensor_name,
                    list(stored_shape)))
        if stored_dtype != entry.dtype:
            raise ValueError(
                "Dtype of variable %s (%s) doesn't match with dtype of tensor "
                "%s (%s) from checkpoint reader." % (
                    _display_name(var), entry.dtype.name, tensor_name,
                    getattr(stored_dtype, "name", "unknown")))
        loads.append([(part, reader.read_region(tensor_name, part.region()))
                      for part in entry.parts])
    # All in one batch when nothing was trained yet; else target by target,
    # leaving the ones already changed.
    try:
        _assign([load for group in loads for load in group],
                expected_version=1)
    except errors.AbortedError:
        for group in loads:
            _assign(group, expected_version=1, skip_aborted=True)


def _display_name(var):
    if isinstance(var, list):
        return ",".join(v.name for v in var)
    return var.name
