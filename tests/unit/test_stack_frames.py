"""Frame lines as eu-stack and gdb print them, reduced to the bare function name pt-pmp counts."""

from __future__ import annotations

import pytest

from collectors.os.stacks import aggregate, function_name, parse, pmp_text


@pytest.mark.parametrize("line,name", [
    # eu-stack: an address, then the (demangled) symbol, or nothing
    ("#0  0x00007f2fe071a26f __poll", "__poll"),
    ("#1  0x000055719ac0c94f handle_connections_sockets()", "handle_connections_sockets"),
    ("#2  0x000055719ac0dd98 mysqld_main(int, char**)", "mysqld_main"),
    ("#4  0x00007f2fe0645305 __libc_start_main@@GLIBC_2.34", "__libc_start_main"),
    ("#2  0x000055719b3cef8d", "??"),
    # gdb: `in`, argument names without values, a source or a library
    ("#5  0x000055719ae24b7d in do_handle_one_connection(CONNECT*, bool) ()",
     "do_handle_one_connection"),
    ("#0  __futex_abstimed_wait_common64 (private=..., cancel=...) at ./nptl/futex-internal.c:57",
     "__futex_abstimed_wait_common64"),
    ("#7  0x000055719b14f647 in ?? ()", "??"),
    ("#3  0x00007f00 in ?? () from /lib/x86_64-linux-gnu/libc.so.6", "??"),
    ("#9  0x00007f2fe07278ec in clone3 () at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81",
     "clone3"),
    # C++: template arguments may hold parentheses and spaces; operator() is a name
    ("#6  0x1 in std::_Function_handler<void (), std::_Bind<void (*(int))(int)> >::_M_invoke("
     "std::_Any_data const&) ()",
     "std::_Function_handler<void (), std::_Bind<void (*(int))(int)> >::_M_invoke"),
    ("#3  0x2 in tpool::task_group::operator()(void*) ()", "tpool::task_group::operator()"),
])
def test_function_name(line, name):
    assert function_name(line) == name


def test_threads_of_both_formats_aggregate_alike():
    eu = ("PID 10 - process\nTID 10:\n#0  0x1 __poll\n#1  0x2 main\n"
          "TID 11:\n#0  0x3 __poll\n#1  0x4 main\nTID 12:\n#0  0x5 __sigtimedwait\n")
    gdb = ('Thread 3 (Thread 0x7f (LWP 12) "mariadbd"):\n#0  __sigtimedwait (a=...) at s.c:1\n\n'
           'Thread 2 (Thread 0x7e (LWP 11) "mariadbd"):\n#0  0x3 in __poll (f=...) at p.c:2\n'
           '#1  0x4 in main ()\n\nThread 1 (Thread 0x7d (LWP 10) "mariadbd"):\n'
           '#0  0x1 in __poll (f=...) at p.c:2\n#1  0x2 in main ()\n')
    for raw in (eu, gdb):
        threads = parse(raw)
        assert sorted(tid for tid, _ in threads) == [10, 11, 12]
        grouped = aggregate(threads)
        assert pmp_text(grouped) == "      2 __poll,main\n      1 __sigtimedwait\n"
        assert grouped[0].threads == [10, 11]
