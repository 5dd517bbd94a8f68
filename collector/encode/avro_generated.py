"""GENERATED from schemas/process_event.avsc by collector/encode/avro_gen.py: do not edit.

Regenerate with
    .venv/bin/python -m collector.encode.avro_gen > collector/encode/avro_generated.py
(tests/unit/test_encode_avro_generated.py fails when this file is not what the
generator makes of the schema). What the code does and why: avro_gen.py.
"""

from __future__ import annotations

from typing import Any

from collector.encode.avro_varint import MEMO, Slow, zigzag_varint
from collector.schema import SharedRecord

#: CRC-64-AVRO of the schema this was generated from (checked before it is used)
SCHEMA_ID = "939a7cb4cdaddba7"
EVENTTYPE_SYMBOLS: Any = {'process_exec': b'\x00', 'process_exit': b'\x02'}
PROCESS_ARGS_TRUNCATED_DEFAULT: Any = False
PROCESS_FLAGS_DEFAULT: Any = []


def encode_ProcessEvent(v: Any) -> bytes:
    """ProcessEvent → Avro binary (fields in schema order)."""
    cls = type(v)
    if cls is SharedRecord:
        cached = v.avro_datum
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    elif cls is not dict:
        raise Slow
    get = v.get
    out = bytearray()
    f_event_type = get('event_type', None)
    try:
        out += EVENTTYPE_SYMBOLS[f_event_type]
    except (KeyError, TypeError):
        raise Slow from None
    f_time = get('time', None)
    if type(f_time) is not int:
        raise Slow
    if 0 <= f_time < 64:
        out.append(f_time << 1)
    else:
        c = MEMO.get(f_time)
        out += c if c is not None else zigzag_varint(f_time)
    f_node = get('node', None)
    if type(f_node) is not str:
        raise Slow
    b = f_node.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        out += zigzag_varint(n)
    out += b
    f_process = get('process', None)
    out += encode_Process(f_process)
    f_parent = get('parent', None)
    if f_parent is None:
        out.append(0)
    else:
        out.append(2)
        out += encode_Process(f_parent)
    f_ancestors = get('ancestors', None)
    if f_ancestors is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_ancestors) is not list:
            raise Slow
        if f_ancestors:
            out += zigzag_varint(len(f_ancestors))
            for item0 in f_ancestors:
                out += encode_Process(item0)
        out.append(0)
    f_exit_code = get('exit_code', None)
    if f_exit_code is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_exit_code) is not int:
            raise Slow
        if not -2147483648 <= f_exit_code <= 2147483647:
            raise Slow
        if 0 <= f_exit_code < 64:
            out.append(f_exit_code << 1)
        else:
            c = MEMO.get(f_exit_code)
            out += c if c is not None else zigzag_varint(f_exit_code)
    f_signal = get('signal', None)
    if f_signal is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_signal) is not str:
            raise Slow
        b = f_signal.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += zigzag_varint(n)
        out += b
    f_core_dumped = get('core_dumped', None)
    if f_core_dumped is None:
        out.append(0)
    else:
        out.append(2)
        if f_core_dumped is True:
            out.append(1)
        elif f_core_dumped is False:
            out.append(0)
        else:
            raise Slow
    f_duration_ns = get('duration_ns', None)
    if f_duration_ns is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_duration_ns) is not int:
            raise Slow
        if 0 <= f_duration_ns < 64:
            out.append(f_duration_ns << 1)
        else:
            c = MEMO.get(f_duration_ns)
            out += c if c is not None else zigzag_varint(f_duration_ns)
    result = bytes(out)
    if cls is SharedRecord:
        v.avro_datum = result
    return result


def encode_Process(v: Any) -> bytes:
    """Process → Avro binary (fields in schema order)."""
    cls = type(v)
    if cls is SharedRecord:
        cached = v.avro_datum
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    elif cls is not dict:
        raise Slow
    get = v.get
    out = bytearray()
    f_exec_id = get('exec_id', None)
    if type(f_exec_id) is not str:
        raise Slow
    b = f_exec_id.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        out += zigzag_varint(n)
    out += b
    f_parent_exec_id = get('parent_exec_id', None)
    if f_parent_exec_id is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_parent_exec_id) is not str:
            raise Slow
        b = f_parent_exec_id.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += zigzag_varint(n)
        out += b
    f_pid = get('pid', None)
    if type(f_pid) is not int:
        raise Slow
    if not -2147483648 <= f_pid <= 2147483647:
        raise Slow
    if 0 <= f_pid < 64:
        out.append(f_pid << 1)
    else:
        c = MEMO.get(f_pid)
        out += c if c is not None else zigzag_varint(f_pid)
    f_tid = get('tid', None)
    if type(f_tid) is not int:
        raise Slow
    if not -2147483648 <= f_tid <= 2147483647:
        raise Slow
    if 0 <= f_tid < 64:
        out.append(f_tid << 1)
    else:
        c = MEMO.get(f_tid)
        out += c if c is not None else zigzag_varint(f_tid)
    f_ppid = get('ppid', None)
    if type(f_ppid) is not int:
        raise Slow
    if not -2147483648 <= f_ppid <= 2147483647:
        raise Slow
    if 0 <= f_ppid < 64:
        out.append(f_ppid << 1)
    else:
        c = MEMO.get(f_ppid)
        out += c if c is not None else zigzag_varint(f_ppid)
    f_uid = get('uid', None)
    if type(f_uid) is not int:
        raise Slow
    if 0 <= f_uid < 64:
        out.append(f_uid << 1)
    else:
        c = MEMO.get(f_uid)
        out += c if c is not None else zigzag_varint(f_uid)
    f_euid = get('euid', None)
    if type(f_euid) is not int:
        raise Slow
    if 0 <= f_euid < 64:
        out.append(f_euid << 1)
    else:
        c = MEMO.get(f_euid)
        out += c if c is not None else zigzag_varint(f_euid)
    f_gid = get('gid', None)
    if type(f_gid) is not int:
        raise Slow
    if 0 <= f_gid < 64:
        out.append(f_gid << 1)
    else:
        c = MEMO.get(f_gid)
        out += c if c is not None else zigzag_varint(f_gid)
    f_egid = get('egid', None)
    if type(f_egid) is not int:
        raise Slow
    if 0 <= f_egid < 64:
        out.append(f_egid << 1)
    else:
        c = MEMO.get(f_egid)
        out += c if c is not None else zigzag_varint(f_egid)
    f_auid = get('auid', None)
    if f_auid is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_auid) is not int:
            raise Slow
        if 0 <= f_auid < 64:
            out.append(f_auid << 1)
        else:
            c = MEMO.get(f_auid)
            out += c if c is not None else zigzag_varint(f_auid)
    f_user = get('user', None)
    if f_user is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_user) is not str:
            raise Slow
        b = f_user.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += zigzag_varint(n)
        out += b
    f_comm = get('comm', None)
    if type(f_comm) is not str:
        raise Slow
    b = f_comm.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        out += zigzag_varint(n)
    out += b
    f_binary = get('binary', None)
    if type(f_binary) is not str:
        raise Slow
    b = f_binary.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        out += zigzag_varint(n)
    out += b
    f_args = get('args', None)
    if type(f_args) is not list:
        raise Slow
    if f_args:
        out += zigzag_varint(len(f_args))
        for item0 in f_args:
            if type(item0) is not str:
                raise Slow
            b = item0.encode()
            n = len(b)
            if n < 64:
                out.append(n << 1)
            else:
                out += zigzag_varint(n)
            out += b
    out.append(0)
    f_args_truncated = get('args_truncated', PROCESS_ARGS_TRUNCATED_DEFAULT)
    if f_args_truncated is True:
        out.append(1)
    elif f_args_truncated is False:
        out.append(0)
    else:
        raise Slow
    f_cwd = get('cwd', None)
    if type(f_cwd) is not str:
        raise Slow
    b = f_cwd.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        out += zigzag_varint(n)
    out += b
    f_start_time = get('start_time', None)
    if type(f_start_time) is not int:
        raise Slow
    if 0 <= f_start_time < 64:
        out.append(f_start_time << 1)
    else:
        c = MEMO.get(f_start_time)
        out += c if c is not None else zigzag_varint(f_start_time)
    f_cgroup_id = get('cgroup_id', None)
    if f_cgroup_id is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_cgroup_id) is not int:
            raise Slow
        if 0 <= f_cgroup_id < 64:
            out.append(f_cgroup_id << 1)
        else:
            c = MEMO.get(f_cgroup_id)
            out += c if c is not None else zigzag_varint(f_cgroup_id)
    f_container_id = get('container_id', None)
    if f_container_id is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_container_id) is not str:
            raise Slow
        b = f_container_id.encode()
        n = len(b)
        if n < 64:
            out.append(n << 1)
        else:
            out += zigzag_varint(n)
        out += b
    f_namespaces = get('namespaces', None)
    if f_namespaces is None:
        out.append(0)
    else:
        out.append(2)
        out += encode_Namespaces(f_namespaces)
    f_flags = get('flags', PROCESS_FLAGS_DEFAULT)
    if type(f_flags) is not list:
        raise Slow
    if f_flags:
        out += zigzag_varint(len(f_flags))
        for item0 in f_flags:
            if type(item0) is not str:
                raise Slow
            b = item0.encode()
            n = len(b)
            if n < 64:
                out.append(n << 1)
            else:
                out += zigzag_varint(n)
            out += b
    out.append(0)
    result = bytes(out)
    if cls is SharedRecord:
        v.avro_datum = result
    return result


def encode_Namespaces(v: Any) -> bytes:
    """Namespaces → Avro binary (fields in schema order)."""
    cls = type(v)
    if cls is SharedRecord:
        cached = v.avro_datum
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    elif cls is not dict:
        raise Slow
    get = v.get
    out = bytearray()
    f_cgroup = get('cgroup', None)
    if f_cgroup is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_cgroup) is not int:
            raise Slow
        if 0 <= f_cgroup < 64:
            out.append(f_cgroup << 1)
        else:
            c = MEMO.get(f_cgroup)
            out += c if c is not None else zigzag_varint(f_cgroup)
    f_ipc = get('ipc', None)
    if f_ipc is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_ipc) is not int:
            raise Slow
        if 0 <= f_ipc < 64:
            out.append(f_ipc << 1)
        else:
            c = MEMO.get(f_ipc)
            out += c if c is not None else zigzag_varint(f_ipc)
    f_mnt = get('mnt', None)
    if f_mnt is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_mnt) is not int:
            raise Slow
        if 0 <= f_mnt < 64:
            out.append(f_mnt << 1)
        else:
            c = MEMO.get(f_mnt)
            out += c if c is not None else zigzag_varint(f_mnt)
    f_net = get('net', None)
    if f_net is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_net) is not int:
            raise Slow
        if 0 <= f_net < 64:
            out.append(f_net << 1)
        else:
            c = MEMO.get(f_net)
            out += c if c is not None else zigzag_varint(f_net)
    f_pid = get('pid', None)
    if f_pid is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_pid) is not int:
            raise Slow
        if 0 <= f_pid < 64:
            out.append(f_pid << 1)
        else:
            c = MEMO.get(f_pid)
            out += c if c is not None else zigzag_varint(f_pid)
    f_time = get('time', None)
    if f_time is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_time) is not int:
            raise Slow
        if 0 <= f_time < 64:
            out.append(f_time << 1)
        else:
            c = MEMO.get(f_time)
            out += c if c is not None else zigzag_varint(f_time)
    f_user = get('user', None)
    if f_user is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_user) is not int:
            raise Slow
        if 0 <= f_user < 64:
            out.append(f_user << 1)
        else:
            c = MEMO.get(f_user)
            out += c if c is not None else zigzag_varint(f_user)
    f_uts = get('uts', None)
    if f_uts is None:
        out.append(0)
    else:
        out.append(2)
        if type(f_uts) is not int:
            raise Slow
        if 0 <= f_uts < 64:
            out.append(f_uts << 1)
        else:
            c = MEMO.get(f_uts)
            out += c if c is not None else zigzag_varint(f_uts)
    result = bytes(out)
    if cls is SharedRecord:
        v.avro_datum = result
    return result


encode = encode_ProcessEvent
