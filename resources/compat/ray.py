"""Ray's private names the project uses (ray 2.60), each with why no public API serves.

Ray is imported inside the functions (a heavy import). See `resources/compat/__init__.py`.
"""

from __future__ import annotations

from typing import Any


def reload_ray_config() -> None:
    """Make Ray re-read its RAY_* settings (the token auth mode) and its token in this process.

    Ray's C++ config and its token loader read them once per process: a process that imported
    Ray before the project's token variables were set would connect without authentication, and
    one that joined another cluster before (a test's, a bench's) would keep that cluster's token;
    either is refused. Ray has no public way to re-read them; these are the two calls its own
    token setup makes (ray/_private/authentication/authentication_token_setup.py). No upstream
    issue asks for a public one.
    """
    # Neither is in ray's _raylet.pyi stub (a compiled module).
    from ray._raylet import (
        AuthenticationTokenLoader,  # pyright: ignore[reportAttributeAccessIssue]
        Config,  # pyright: ignore[reportAttributeAccessIssue]
    )

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def serve_http_target_ports(app_name: str) -> list[int]:
    """The HTTP ports Ray Serve's controller lists for an application's targets (for
    bench/serving.py's direct ingress: the replicas' own servers).

    No public API names them (ray 2.60): `serve.status()` and the REST API's replica details
    carry no port; the controller's target groups, added with direct ingress (ray#60118), do. A
    pull request to put the port in the replica details (ray#51664) was closed unmerged. Empty
    until Serve lists them; the caller waits.
    """
    import ray
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        raise RuntimeError(
            "no Serve controller in this process: deploy the app with serve.run first"
        )
    groups = ray.get(client._controller.get_target_groups.remote(app_name))
    return sorted(
        target.port
        for group in groups
        if str(getattr(group.protocol, "value", group.protocol)).upper() == "HTTP"
        for target in group.targets
    )


def with_code_version(deployment: Any, code_version: str) -> Any:
    """A copy of a Serve deployment that deploys under `code_version`.

    `serve.run` gives a deployment without a version a random code version on every call
    (ray/serve/_private/client.py: `deployment._version or get_random_string()`), so every
    redeploy replaces all replicas by a rolling update, and a `user_config` change never takes
    Serve's lightweight path (`reconfigure` on the running replicas). The public ways to keep
    a version are gone: `Deployment.options(version=...)` raises since Ray 2.x, and a config
    file deployed with `serve deploy` goes through the dashboard's REST API, which the project's
    head does not run. The attribute is the one `options()` itself carries over.
    """
    copy = deployment.options()
    copy._version = code_version
    return copy


def free_cpus_per_node() -> dict[str, float]:
    """Each live node's free CPUs, by node id (a node with none free maps to 0).

    A Ray actor or trial must fit on one node, so the cluster's free total
    (`ray.available_resources()`) over-promises: 0.5 CPU free on each of two nodes is 1.0 in all,
    yet an actor of one CPU fits nowhere and waits forever. No public API gives the free CPUs of
    each node (ray 2.60): `ray.nodes()` has each node's total only, and `ray.util.state` asks the
    dashboard, which the project's heads do not run. This DeveloperAPI in `ray._private.state` is
    what Serve's own scheduler reads; ray#60134 asks to make it public (its pull request ray#60135
    was closed unmerged).
    """
    from ray._private.state import available_resources_per_node, total_resources_per_node

    free = available_resources_per_node()
    # A node whose CPUs are all taken lists no "CPU" among its free resources.
    return {node: float(free.get(node, {}).get("CPU", 0.0)) for node in total_resources_per_node()}
