"""What runs inside the sandboxes, one role per sandboxed interpreter:

- `candidate`: runs the candidate's program and serves calls to its entry point over a pipe, each
  result sent back as a plain value (`wire.py`); it never sees a test;
- `tests`: runs the tests (HumanEval's `check`, MBPP's setup and asserts) with `candidate` and the
  entry point's name bound to a proxy whose calls go over the pipe; it never holds candidate code,
  only plain values decoded from the pipe, and it alone writes the verdict, on a channel that only
  this process has;
- `stdio`: runs the program as `__main__` on the input the supervisor feeds it (the supervisor compares
  the output itself: expected outputs never enter a sandbox);
- `selftest`: reports what the sandbox looks like from the inside (uid, network, read-only root, scratch
  quota, PID namespace, hidden paths) for `sandbox.self_test`.

Each role first drops root (when the sandbox starts as root) to the uid the supervisor picked, sets its
resource limits, and says "ready" on its status channel before reading anything else: a sandbox that
never says so failed to start (`sandbox_error`); after that, nothing the program does can say so.

Standard library only, and no `from __future__` import: the supervisor runs this file's source, after
wire.py's, as `python -I -S -c SOURCE ROLE CONFIG` (see `sandbox.runner_command`).
"""

import builtins
import os
import resource
import sys

if __name__ != "__main__":  # imported by the supervisor; inside a sandbox wire.py's source comes first
    from distill.verify.wire import (
        NotPlain,
        WireError,
        dumps,
        from_json,
        parse,
        read_frame,
        to_json,
        write_frame,
    )

_LIMITS = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
           "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE}


def enter(config):
    """Become the sandbox's unprivileged user (when started as root) and apply the resource limits."""
    uid = config.get("uid", -1)
    if uid >= 0 and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if 0 in os.getresuid() or 0 in os.getresgid():
            raise SystemExit("sandbox: could not drop root")
        # Changing uid without exec leaves the process non-dumpable, so /proc/self would stay root's
        # (a program could not read its own /proc/self/fd); a normal process of this uid is dumpable.
        import ctypes

        ctypes.CDLL(None).prctl(4, 1)  # PR_SET_DUMPABLE
    for name, value in config.get("limits", {}).items():
        resource.setrlimit(_LIMITS[name], (value, value))


def say(fd, **fields):
    """One JSON line on a status or verdict channel."""
    data = dumps(fields, 1 << 20) + b"\n"
    while data:
        data = data[os.write(fd, data):]


def read_all(fd):
    """Everything the supervisor wrote on `fd`, as text; the fd is closed afterwards."""
    return read_bytes(fd).decode("utf-8", "surrogatepass")


def read_bytes(fd):
    """Everything the supervisor wrote on `fd`; the fd is closed afterwards."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def describe(err):
    """`Type: message`, short; a message that cannot be rendered is left out."""
    try:
        text = str(err)
    except BaseException:
        text = "?"
    return (type(err).__name__ + ": " + text)[:300]


def failure(err):
    """The status of an exception raised by a program or a test."""
    if isinstance(err, MemoryError):
        return "memory"
    return "wrong_answer" if isinstance(err, AssertionError) else "runtime_error"


def _define_exit():
    """exit() and quit(), which programs call and which `-S` leaves undefined (site defines them)."""
    import site  # under -S, importing site runs nothing by itself

    site.setquit()


# The candidate's side -------------------------------------------------------------------------------


def serve(config):
    """Run the program, then answer `{"call", "args", "kwargs"}` requests until the tests close the pipe."""
    enter(config)
    say(config["status"], ready=True)
    os.close(config["status"])
    program = read_all(config["program"])
    requests, responses = config["requests"], config["responses"]
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    sys.argv = ["solution.py"]
    _define_exit()
    try:
        exec(compile(program, "solution.py", "exec"), ns)
    except BaseException as err:  # noqa: B036 (the program's SystemExit, too, means it did not load)
        write_frame(responses, {"loaded": False, "status": failure(err), "error": describe(err)})
        os._exit(0)
    write_frame(responses, {"loaded": True})
    while True:
        try:
            request = read_frame(requests)
            name, args, kwargs = request["call"], from_json(request["args"]), from_json(request["kwargs"])
        except (WireError, KeyError):
            os._exit(0)  # the tests are done, or gone
        try:
            if name not in ns:
                raise NameError(f"name {name!r} is not defined")
            result = ns[name](*args, **kwargs)
        except BaseException as err:  # noqa: B036
            reply = {"raise": type(err).__name__, "message": describe(err).partition(": ")[2]}
        else:
            try:
                reply = {"value": to_json(result)}
            except WireError as err:
                reply = {"unserializable": str(err)[:300]}
        try:
            write_frame(responses, reply)
        except WireError as err:
            write_frame(responses, {"unserializable": str(err)[:300]})


# The tests' side ------------------------------------------------------------------------------------


class Stop(BaseException):
    """Ends a test at a call that cannot be made or answered; a BaseException so that a test's own
    `except Exception` does not swallow it (a bare `except:` may, hence `Channel.failure`)."""


class Channel:
    """The tests' end of the pipe to the candidate. A call that fails for a reason of the wire (the
    program died, sent something malformed or unserializable) is recorded in `failure` as well as
    raised, so that a test which swallows the exception still fails."""

    def __init__(self, inp, out):
        self.inp, self.out = inp, out
        self.broken = None  # why the pipe is unusable
        self.failure = None  # (status, error) of the current test, set by a failed call

    def fail(self, status, error):
        if self.failure is None:
            self.failure = (status, error)
        raise Stop(error)

    def receive(self):
        try:
            return read_frame(self.inp)
        except (WireError, OSError) as err:
            self.broken = f"no valid answer from the program ({err})"
            self.fail("runtime_error", self.broken)

    def loaded(self):
        """None when the program loaded, else (status, error)."""
        message = self.receive() if self.broken is None else None
        if type(message) is dict and message.get("loaded") is True and len(message) == 1:
            return None
        if type(message) is dict and message.get("loaded") is False:
            status = message.get("status") if message.get("status") in ("memory", "runtime_error") else "runtime_error"
            return status, str(message.get("error"))[:300]
        return "runtime_error", "the program did not load"

    def call(self, name, args, kwargs):
        if self.broken is not None:
            self.fail("runtime_error", self.broken)
        try:
            request = {"call": name, "args": to_json(list(args)), "kwargs": to_json(dict(kwargs))}
        except NotPlain as err:
            self.fail("unsupported_test", f"the test passes a value the wire cannot carry: {err}")
        except WireError as err:
            self.fail("runtime_error", f"the test's arguments cannot be sent: {err}")
        try:
            write_frame(self.out, request)
        except (WireError, OSError) as err:
            self.broken = f"the program's process is gone ({type(err).__name__})"
            self.fail("runtime_error", self.broken)
        reply = self.receive()
        keys = sorted(reply)
        try:
            if keys == ["value"]:
                return from_json(reply["value"])
        except WireError as err:
            self.broken = f"a malformed value from the program ({err})"
            self.fail("runtime_error", self.broken)
        if keys == ["message", "raise"] and type(reply["raise"]) is str and type(reply["message"]) is str:
            raise exception(reply["raise"], reply["message"][:300])
        if keys == ["unserializable"]:
            self.fail("unserializable_result", f"the program returned a value that is not plain: "
                                               f"{str(reply['unserializable'])[:200]}")
        self.broken = "a malformed message from the program"
        self.fail("runtime_error", self.broken)


def exception(name, message):
    """The program's exception on the tests' side: the same type for a builtin Exception, else RuntimeError."""
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls, message = RuntimeError, f"{name}: {message}"[:300]
    try:
        return cls(message)
    except Exception:  # a builtin whose constructor wants more arguments (UnicodeDecodeError)
        err = cls.__new__(cls)
        err.args = (message,)
        return err


class Proxy:
    """Stands for the candidate's function: calls go over the pipe; only plain values come back."""

    __slots__ = ("_channel", "_name")

    def __init__(self, channel, name):
        self._channel, self._name = channel, name

    def __call__(self, *args, **kwargs):
        return self._channel.call(self._name, args, kwargs)

    def __repr__(self):
        return f"<candidate {self._name}>"


def run_tests(config):
    """Run the job's tests against the proxy; report each test's status and then `done` on the verdict fd."""
    enter(config)
    verdict = config["verdict"]
    say(verdict, ready=True)
    job = parse(read_bytes(config["job"]))
    ns = {"__name__": "__tests__", "__builtins__": builtins}
    for module in job["modules"]:  # stdlib modules the tests use without importing them (mbpp-596: sys)
        ns[module] = __import__(module)
    if job["prompt"]:
        try:  # the problem's own prompt code defines helpers the tests call (HumanEval/32's poly)
            exec(compile(job["prompt"], "prompt.py", "exec"), ns)
        except BaseException as err:  # noqa: B036
            say(verdict, stage="prompt", status="bad_reference", error=describe(err))
            say(verdict, done=True)
            os._exit(0)
    channel = Channel(config["responses"], config["requests"])
    try:
        not_loaded = channel.loaded()
    except Stop:
        not_loaded = ("runtime_error", channel.broken)
    if not_loaded is not None:
        say(verdict, stage="program", status=not_loaded[0], error=not_loaded[1])
        say(verdict, done=True)
        os._exit(0)
    say(verdict, stage="loaded")
    ns["candidate"] = ns[job["entry"]] = Proxy(channel, job["entry"])
    if job["mode"] == "check":
        tests = [job["tests"][0] + "\n\ncheck(candidate)\n"]
    else:
        tests = list(job["tests"])
        if job["setup"]:  # MBPP's test fixtures, built once, with the proxy bound (they may call it)
            try:
                exec(compile(job["setup"], "setup.py", "exec"), ns)
            except BaseException as err:  # noqa: B036
                for index in range(len(tests)):
                    say(verdict, stage="test", index=index, status=failure(err), error="setup: " + describe(err))
                say(verdict, done=True)
                os._exit(0)
    for index, source in enumerate(tests):
        channel.failure = None
        status, error = "passed", None
        try:
            exec(compile(source, f"test_{index}.py", "exec"), ns)
        except Stop as err:
            status, error = "runtime_error", str(err)
        except BaseException as err:  # noqa: B036
            status, error = failure(err), describe(err)
        if channel.failure is not None:
            status, error = channel.failure
        say(verdict, stage="test", index=index, status=status, error=error)
    say(verdict, done=True)
    os._exit(0)


# stdio and the self-test ----------------------------------------------------------------------------


def run_stdio(config):
    """Run the program as __main__ on this process's stdin (the supervisor feeds one case's input)."""
    enter(config)
    say(config["status"], ready=True)
    os.close(config["status"])
    program = read_all(config["program"])
    _define_exit()
    sys.argv = ["main.py"]
    ns = {"__name__": "__main__", "__builtins__": builtins, "__file__": "main.py"}
    exec(compile(program, "main.py", "exec"), ns)


def selftest(config):
    """Print, as JSON, what a program sees: the supervisor's `self_test` decides whether that is a sandbox."""
    import errno
    import socket

    enter(config)
    say(config["status"], ready=True)
    os.close(config["status"])
    seen = {"resuid": list(os.getresuid()), "resgid": list(os.getresgid())}
    with open("/proc/self/status") as handle:
        seen["cap_eff"] = next((line.split()[1] for line in handle if line.startswith("CapEff:")), None)
    try:
        socket.create_connection(("127.0.0.1", config["port"]), timeout=2).close()
        seen["connected"] = True
    except OSError:
        seen["connected"] = False
    try:
        seen["interfaces"] = [name for _, name in socket.if_nameindex()]
    except OSError:
        seen["interfaces"] = []
    try:
        with open("/distill-selftest", "w") as handle:
            handle.write("x")
        seen["root_writable"] = True
    except OSError:
        seen["root_writable"] = False
    seen["quota_held"] = False
    try:
        with open("/tmp/fill", "wb") as handle:
            for _ in range(config["fill_mb"]):
                handle.write(b"\0" * (1 << 20))
                handle.flush()
    except OSError as err:
        seen["quota_held"] = err.errno in (errno.ENOSPC, errno.EDQUOT)
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    try:
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        seen["can_fork"] = True
    except OSError:
        seen["can_fork"] = False
    seen["self"] = os.getpid()
    seen["visible"] = [path for path in config["hidden"] if os.path.exists(path)]
    seen["env"] = sorted(os.environ)
    print(dumps(seen).decode())


ROLES = {"candidate": serve, "tests": run_tests, "stdio": run_stdio, "selftest": selftest}


def main():
    """`python -I -S -c SOURCE ROLE CONFIG_JSON`."""
    ROLES[sys.argv[1]](parse(sys.argv[2].encode()))


if __name__ == "__main__":
    main()
