"""From ``@pytest.mark.dynpool`` declarations to jobs, with usage errors that name the test."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from .model import RATE_HINT, JobSpec, Rate, parse_rate

# Re-exported: code and conftests import them from here since before model.py.
from .model import Job as Job
from .model import JobAssignment as JobAssignment
from .order import Order

MARKER_NAME = "dynpool"
MARKER_HELP = (
    "dynpool(max_concurrency, *, job=None, rate=None, adaptive=False, timeout=None): run "
    "this test (class, module) on the dynpool thread pool with at most max_concurrency of "
    "its job in flight at once, at most rate ('10/s', '600/m') test starts and requests a "
    "second, with adaptive=True fewer while the server answers 429/503; timeout=SECONDS "
    "fails an item still running after that long (0: never)."
)
ALONE_MARKER_NAME = "dynpool_alone"
ALONE_MARKER_HELP = (
    "dynpool_alone: run this test (class, module) alone, outside the dynpool thread pool, "
    "as plain pytest would: for tests that change process-wide state."
)
UNMARKED_JOB = "unmarked"
# A cap above any pool size is bounded by the pool; above this one it is a typo.
MAX_CAP = 1_000_000
# One name for two jobs would give them one HTTP limit but two caps in the scheduler.
RESERVED_HINT = "is reserved for the tests without a dynpool marker; give the job another name"
FIX_HINT = (
    'use @pytest.mark.dynpool(max_concurrency=K) with an integer K >= 1, optionally job="name", '
    f"rate=... ({RATE_HINT}), adaptive=True/False and timeout=SECONDS (a number >= 0; "
    "0 turns the timeout off)"
)


# Unmarked items that run alone share this job: one test at a time, so its
# client sends one request at a time too. Mark a test to let it send more.
UNMARKED_EXCLUSIVE_JOB = Job.from_assignment(
    JobAssignment(UNMARKED_JOB, 1, "unmarked tests (run alone)")
)
ITEM_JOB_KEY = pytest.StashKey[Job]()


@dataclass(frozen=True, slots=True)  # one per pooled item, alive all session
class PooledItem:
    """One item of the pool: its job (an index into ``Plan.jobs``) and its timeout (None: none)."""

    item: pytest.Item
    job_index: int
    timeout: float | None


@dataclass
class Plan:
    """How the selected items run: alone, one at a time, or in the pool."""

    jobs: list[Job] = field(default_factory=list)
    exclusive: list[pytest.Item] = field(default_factory=list)
    pooled: list[PooledItem] = field(default_factory=list)
    unknown_overrides: list[str] = field(default_factory=list)
    order: Order = Order.DURATION
    # Seconds each pooled item took in an earlier run (pytest's cache), None if unknown.
    known_seconds: list[float | None] = field(default_factory=list)
    # Marked items that run alone anyway, by why: a thread-unsafe fixture's name,
    # or the dynpool_alone marker. Counted among ``exclusive``.
    alone: dict[str, int] = field(default_factory=dict)


def _dynpool(
    max_concurrency: int,
    *,
    job: str | None = None,
    rate: str | None = None,
    adaptive: bool = False,
    timeout: float | None = None,
) -> JobSpec:
    """Mirror of the marker's signature, so Python itself rejects bad arguments."""
    _check_cap(max_concurrency)
    if job is not None:
        _check_name(job, "job")
    if job == UNMARKED_JOB:
        raise ValueError(f"the job name {UNMARKED_JOB!r} {RESERVED_HINT}")
    _check_adaptive(adaptive)
    parsed_rate = None if rate is None else parse_rate(rate)
    return JobSpec(
        max_concurrency=max_concurrency,
        job=job,
        rate=parsed_rate,
        adaptive=adaptive,
        timeout=_check_timeout(timeout),
    )


def _check_cap(cap: object) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int):
        raise TypeError(f"max_concurrency must be an int, got {cap!r}")
    if cap < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {cap}")
    if cap > MAX_CAP:
        raise ValueError(f"max_concurrency must be <= {MAX_CAP:,} (the pool bounds it), got {cap}")
    return cap


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} must be a non-empty string, got {name!r}")
    return name


def _check_adaptive(adaptive: object) -> bool:
    if not isinstance(adaptive, bool):
        raise TypeError(f"adaptive must be True or False, got {adaptive!r}")
    return adaptive


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond any float
        seconds = float("inf")
    if not 0 <= seconds < float("inf"):  # also rejects NaN
        raise ValueError(f"timeout must be a finite number >= 0, got {timeout!r}")
    return seconds


def check_hook_assignment(assignment: object, item: pytest.Item) -> JobAssignment | None:
    """What ``pytest_dynpool_job_for_item`` returned, checked like a marker's arguments."""
    if assignment is None:
        return None
    try:
        if not isinstance(assignment, JobAssignment):
            raise TypeError(f"expected a JobAssignment or None, got {type(assignment).__name__}")
        _check_name(assignment.name, "name")
        _check_cap(assignment.max_concurrency)
        _check_name(assignment.declared_at, "declared_at")
        if assignment.rate is not None and not isinstance(assignment.rate, Rate):
            raise TypeError(f"rate must be a Rate (parse_rate('10/s')), got {assignment.rate!r}")
        _check_adaptive(assignment.adaptive)
        _check_timeout(assignment.timeout)
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(
            f"{item.nodeid}: pytest_dynpool_job_for_item returned {assignment!r}: {error}; "
            f"return None or JobAssignment(name, max_concurrency, declared_at) with a non-empty "
            f"name and an integer max_concurrency from 1 to {MAX_CAP:,}"
        ) from None
    return assignment


def parse_marker(mark: pytest.Mark, where: str) -> JobSpec:
    """Validate one dynpool mark; ``where`` names the test in the error."""
    try:
        return _dynpool(*mark.args, **mark.kwargs)
    except (TypeError, ValueError) as error:
        message = str(error).replace("_dynpool()", "dynpool()")
        raise pytest.UsageError(
            f"{where}: invalid @pytest.mark.dynpool{_format_args(mark)}: {message}; {FIX_HINT}"
        ) from None


def _format_args(mark: pytest.Mark) -> str:
    parts = [repr(arg) for arg in mark.args]
    parts += [f"{key}={value!r}" for key, value in mark.kwargs.items()]
    return f"({', '.join(parts)})"


def _function_id(item: pytest.Item) -> str:
    """A test function's id: its items' ids without the parameter suffix."""
    original_name = getattr(item, "originalname", None)
    if original_name is None or item.parent is None:
        return item.nodeid
    return f"{item.parent.nodeid}::{original_name}"


def assignment_from_marker(item: pytest.Item) -> JobAssignment | None:
    """The closest dynpool declaration of ``item``, or None when it has none.

    A marker given to one ``pytest.param`` is closest of all and makes a job of
    that item alone. A marker on a test function applies to all its
    parametrized items, which pytest keeps only as items, so the job is named
    after the function.
    """
    callspec = getattr(item, "callspec", None)
    param_marks = [mark for mark in getattr(callspec, "marks", ()) if mark.name == MARKER_NAME]
    if param_marks:
        return _assignment(_one_spec(param_marks, item), item.nodeid)
    closest: list[pytest.Mark] = []
    closest_node: object = None
    for node, mark in item.iter_markers_with_node(MARKER_NAME):
        if closest and node is not closest_node:
            break
        closest_node = node
        closest.append(mark)
    if not isinstance(closest_node, pytest.Collector | pytest.Item):
        return None
    declared_at = _function_id(item) if closest_node is item else closest_node.nodeid
    return _declared_assignment(closest, declared_at, item)


# One assignment per declaration (its marks and where), so that a module's or class's
# marker is validated once rather than once per item; the marks are kept so that
# their ids stay theirs for the session.
_DECLARATIONS_KEY = pytest.StashKey[
    dict[tuple[object, ...], tuple[Sequence[pytest.Mark], JobAssignment]]
]()


def _declared_assignment(
    marks: Sequence[pytest.Mark], declared_at: str, item: pytest.Item
) -> JobAssignment:
    declarations = item.config.stash.setdefault(_DECLARATIONS_KEY, {})
    key = (*map(id, marks), declared_at)
    known = declarations.get(key)
    if known is None:
        known = declarations[key] = (marks, _assignment(_one_spec(marks, item), declared_at))
    return known[1]


def _one_spec(marks: Sequence[pytest.Mark], item: pytest.Item) -> JobSpec:
    """The marks of one declaring node; two that disagree are a usage error."""
    specs = [parse_marker(mark, item.nodeid) for mark in marks]
    for mark, spec in zip(marks[1:], specs[1:], strict=True):
        if spec != specs[0]:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.dynpool is applied twice with different "
                f"arguments: dynpool{_format_args(marks[0])} and dynpool{_format_args(mark)}; "
                "keep one of them"
            )
    return specs[0]


XDIST_GROUP_MARKER = "xdist_group"


def assignment_from_xdist_group(item: pytest.Item) -> JobAssignment | None:
    """``--dynpool-xdist-groups``: an ``xdist_group(name)`` mark as a job of cap 1.

    What ``--dist loadgroup`` promised (a group's tests never overlap), kept on
    the pool: the group's tests run one at a time, beside other jobs' tests.
    """
    for node, mark in item.iter_markers_with_node(XDIST_GROUP_MARKER):
        name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        declared_at = _function_id(item) if node is item else node.nodeid
        return JobAssignment(f"{XDIST_GROUP_MARKER}={name}", 1, declared_at)
    return None


def _assignment(spec: JobSpec, declared_at: str) -> JobAssignment:
    name = spec.job or declared_at
    return JobAssignment(
        name,
        spec.max_concurrency,
        declared_at,
        rate=spec.rate,
        adaptive=spec.adaptive,
        timeout=spec.timeout,
    )


def build_plan(
    items: Sequence[pytest.Item],
    assignments: Sequence[JobAssignment | None],
    cap_overrides: Mapping[str, int],
    unmarked_in_pool: bool,
    workers: int,
    rate_overrides: Mapping[str, Rate] | None = None,
    default_timeout: float | None = None,
    alone_fixtures: Collection[str] = (),
) -> Plan:
    """Group items into jobs; one name declared with two settings is a usage error.

    Every item's job goes into ``item.stash[ITEM_JOB_KEY]``, also for items that
    run alone, so that the HTTP fixtures apply its limits wherever it runs. An
    item's timeout is its marker's, else ``default_timeout``; 0 means none. An
    item that uses one of ``alone_fixtures`` (directly or through another
    fixture) or is marked ``dynpool_alone`` runs alone, whatever its job.
    """
    rate_overrides = rate_overrides or {}
    plan = Plan()
    first_declaration: dict[str, JobAssignment] = {}
    jobs_by_name: dict[str, Job] = {}
    job_index: dict[str, int] = {}
    checked: set[int] = set()  # ids of the assignments checked so far (alive in ``assignments``)
    marked_parents: dict[pytest.Item | pytest.Collector, bool] = {}
    for item, returned in zip(items, assignments, strict=True):
        if id(returned) in checked:  # the same declaration as an earlier item's
            assignment = returned
        else:
            assignment = check_hook_assignment(returned, item)
            if assignment is not None:
                checked.add(id(assignment))
        if assignment is not None and assignment.name == UNMARKED_JOB:  # from a hook
            raise pytest.UsageError(
                f"{item.nodeid}: dynpool job name {UNMARKED_JOB!r} (declared at "
                f"{assignment.declared_at}) {RESERVED_HINT}"
            )
        if assignment is None:
            if not unmarked_in_pool:
                item.stash[ITEM_JOB_KEY] = UNMARKED_EXCLUSIVE_JOB
                plan.exclusive.append(item)
                continue
            assignment = JobAssignment(UNMARKED_JOB, workers, "--dynpool-unmarked=pool")
        first = first_declaration.setdefault(assignment.name, assignment)
        if assignment is not first:
            _check_same_settings(first, assignment, item)
        job = jobs_by_name.get(assignment.name)
        if job is None:
            job = jobs_by_name[assignment.name] = Job.from_assignment(
                first,
                cap_override=cap_overrides.get(first.name),
                rate_override=rate_overrides.get(first.name),
            )
        item.stash[ITEM_JOB_KEY] = job
        reason = why_alone(item, alone_fixtures, marked_parents)
        if reason is not None:
            plan.exclusive.append(item)
            plan.alone[reason] = plan.alone.get(reason, 0) + 1
            continue
        index = job_index.get(assignment.name)
        if index is None:
            index = job_index[assignment.name] = len(plan.jobs)
            plan.jobs.append(job)
        timeout = default_timeout if assignment.timeout is None else assignment.timeout
        plan.pooled.append(PooledItem(item, index, timeout or None))
    overridden = set(cap_overrides) | set(rate_overrides)
    plan.unknown_overrides = sorted(overridden - set(first_declaration))
    return plan


def why_alone(
    item: pytest.Item,
    alone_fixtures: Collection[str],
    marked_parents: dict[pytest.Item | pytest.Collector, bool] | None = None,
) -> str | None:
    """Why ``item`` must run alone: the marker, or the first thread-unsafe fixture it uses.

    ``marked_parents`` remembers which parents carry the marker, across the items of a plan.
    """
    if _marked_alone(item, {} if marked_parents is None else marked_parents):
        return ALONE_MARKER_NAME
    used = getattr(item, "fixturenames", ())
    return next((name for name in used if name in alone_fixtures), None)


def _marked_alone(
    node: pytest.Item | pytest.Collector, parents: dict[pytest.Item | pytest.Collector, bool]
) -> bool:
    """``node.get_closest_marker(ALONE_MARKER_NAME) is not None``, each parent looked at once."""
    for mark in node.own_markers:
        if mark.name == ALONE_MARKER_NAME:
            return True
    parent = node.parent
    if parent is None:
        return False
    found = parents.get(parent)
    if found is None:
        found = parents[parent] = _marked_alone(parent, parents)
    return found


def _settings(assignment: JobAssignment) -> str:
    text = f"max_concurrency={assignment.max_concurrency}"
    if assignment.rate is not None:
        text += f", rate={assignment.rate.text!r}"
    if assignment.adaptive:
        text += ", adaptive=True"
    return text


def _check_same_settings(
    first: JobAssignment, assignment: JobAssignment, item: pytest.Item
) -> None:
    if _settings(first) == _settings(assignment):
        return
    raise pytest.UsageError(
        f'dynpool job "{first.name}" is declared with two different caps: '
        f"{_settings(first)} at {first.declared_at} and "
        f"{_settings(assignment)} at {assignment.declared_at} "
        f"(test {item.nodeid}); give every declaration of the job the same "
        "max_concurrency, rate and adaptive, or use different job names"
    )
