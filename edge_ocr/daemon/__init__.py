"""The daemon: ``service`` (the loop, reload, signals) over ``capture`` → ``gate`` → the page
reader → ``delivery`` (the outbox and the sinks: ``mqtt``, stdout, the latest page), with
``health`` the one owner of counters and faults, and ``systemd`` notification."""
