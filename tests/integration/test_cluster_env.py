"""The shared 3-node test cluster of clusterenv.py (issue 19): what the cluster tests stand on.

- Three nodes of one cluster ("cassette-cluster"), each UP as the Python driver sees it, and
  each listing the other two in its system.peers_v2 with one balanced token apiece.
- Each node's agent answers GET /v1/node over HTTPS (its certificate checked against the base
  directory's CA) with that node's host id; no token or a wrong one gets 401 and starts nothing;
  the token is on no agent's command line.
"""

import pytest

pytestmark = pytest.mark.cluster

# Balanced single tokens of 3 nodes (tests/env/cassandra.sh --cluster), in node order.
BALANCED_3 = ["-9223372036854775808", "-3074457345618258603", "3074457345618258602"]


def test_three_nodes_see_each_other(cluster):
    hosts = cluster.driver.metadata.all_hosts()
    assert sorted(h.address for h in hosts) == sorted(cluster.addresses)
    assert all(h.is_up for h in hosts), [(h.address, h.is_up) for h in hosts]
    tokens = {}
    for h in hosts:
        local = cluster.session.execute("SELECT cluster_name, host_id, tokens FROM system.local",
                                        host=h).one()
        assert local.cluster_name == "cassette-cluster"
        assert local.host_id == h.host_id
        peers = cluster.session.execute("SELECT peer, host_id, tokens FROM system.peers_v2",
                                        host=h).all()
        assert sorted(str(p.peer) for p in peers) == sorted(a for a in cluster.addresses
                                                            if a != h.address), (h.address, peers)
        assert all(p.host_id is not None and len(p.tokens) == 1 for p in peers), peers
        tokens[h.address] = sorted(local.tokens)
    assert [tokens[a] for a in cluster.addresses] == [[t] for t in BALANCED_3]


def test_each_agent_answers_with_its_node(cluster):
    by_addr = {h.address: str(h.host_id) for h in cluster.driver.metadata.all_hosts()}
    for n, addr in zip(cluster.numbers, cluster.addresses):
        st, facts = cluster.agent_call(n, "GET", "/v1/node")
        assert st == 200, (n, facts)
        assert facts["host_id"] == by_addr[addr], (n, facts)
        assert facts["cluster_name"] == "cassette-cluster"
    assert cluster.host_ids() == {n: by_addr[a] for n, a in zip(cluster.numbers, cluster.addresses)}
    assert cluster.agent_urls == [f"https://127.0.0.{n}:7620" for n in cluster.numbers]
    assert cluster.agent_template.format(rpc_address=cluster.addresses[0]) == cluster.agent_urls[0]


def test_agents_refuse_a_missing_or_wrong_token(cluster):
    token = cluster.token_file.read_text().strip()
    assert cluster.token_file.stat().st_mode & 0o077 == 0
    wrong = "0" * len(token) if token != "0" * len(token) else "1" * len(token)
    for n in cluster.numbers:
        st, jobs_before = cluster.agent_call(n, "GET", "/v1/jobs")
        assert st == 200, jobs_before
        for bad in (False, wrong):
            st, doc = cluster.agent_call(n, "GET", "/v1/node", token=bad)
            assert st == 401 and "error" in doc, (n, bad, st, doc)
            st, doc = cluster.agent_call(n, "POST", "/v1/ops/list", body={"repo": cluster.new_repo()},
                                         token=bad)
            assert st == 401, (n, st, doc)
        st, jobs_after = cluster.agent_call(n, "GET", "/v1/jobs")
        assert jobs_after == jobs_before, "a request without the token started a job"
        with open(f"/proc/{cluster.agent_pid(n)}/cmdline", "rb") as f:
            assert token.encode() not in f.read()
