"""The API's routes, one router per concern. Each module's ``router(ctx)`` builds its
routes over the app's ``ServerContext``:

* ``lesson``: the lesson's own routes (``POST /task``, ``GET /dequeue``,
  ``POST /complete/{id}``, ``POST /fail/{id}``, ``GET /stats``);
* ``tasks``: submitting (one, a batch) and reading tasks;
* ``workers``: claims (with the long poll), heartbeats and reports;
* ``dead_letter``: the failed tasks, and their replay;
* ``operations``: health, purge and the Prometheus metrics;
* ``dashboard``: the classroom's page at ``/``, and the data it draws.
"""
