"""Print benchmarks/live.py's results as tables with ratios and the targets."""


def _t(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _mb(n) -> str:
    return f"{n / 2**20:,.0f} MB"


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(r: dict) -> list:
    out = []
    a = r.get("a_live")
    if a:
        rows = []
        for m in a["models"]:
            for s in m["sparsities"]:
                rows.append([m["model"], m["images"], f"{s['sparsity']:.2f}", _t(s["dense_forward"]), _t(s["live"]),
                             f"{s['ratio_live_to_dense']:.2f}x", _t(s.get("live_fast")),
                             f"{s['ratio_fast_to_dense']:.2f}x" if "ratio_fast_to_dense" in s else "-",
                             _t(s.get("torch_prune")),
                             f"{s['ratio_live_to_torch_prune']:.2f}x" if "ratio_live_to_torch_prune" in s else "-",
                             _t(m["flop_bound_seconds"]), f"{s['accuracy']:.4f}",
                             f"{s['torch_prune_accuracy']:.4f}" if "torch_prune_accuracy" in s else "-"])
        out.append(("a. Live latency (compute_mask + evaluate), large_final global; matmul "
                    f"{a['matmul_gflops']:.1f} GFLOP/s measured",
                    table(["model", "images", "sparsity", "dense forward", "live", "live/dense", "live (fast path)",
                           "fast/dense", "torch prune + eval", "live/torch", "FLOP bound", "accuracy", "torch acc."],
                          rows)))
        layout = [[m["model"], m["images"], f"{s['sparsity']:.2f}", _t(s["dense_forward_nchw"]), _t(s["dense_forward"]),
                   f"{s['ratio_dense_to_nchw']:.2f}x"]
                  for m in a["models"] for s in m["sparsities"] if "dense_forward_nchw" in s]
        if layout:
            out.append(("a. Dense forward pass of the PyTorch CIFAR nets: channels-first (PyTorch's default) vs the "
                        "adapter's channels-last memory order",
                        table(["model", "images", "sparsity", "channels-first", "channels-last", "last/first"],
                              layout)))
        out.append(("a. First ranking (sort once per setting) per model",
                    table(["model", "images", "first compute_mask"],
                          [[m["model"], m["images"], _t(m["first_ranking_seconds"])] for m in a["models"]])))
        out.append(("a. CSR vs dense addmm, 300 x 784 kernel, 10,000 images",
                    table(["sparsity", "dense", "CSR", "CSR speedup"],
                          [[f"{c['sparsity']:.3f}", _t(c["dense"]), _t(c["csr"]), f"{c['csr_speedup']:.2f}x"]
                           for c in a["crossover"]])))
    b = r.get("b_lottery_ticket_pruner")
    if b:
        if "error" in b:
            out.append(("b. lottery-ticket-pruner", f"not measured: {b['error']}"))
        else:
            out.append((f"b. lottery-ticket-pruner {b['lottery_ticket_pruner']} (tf_keras {b['tf_keras']}) "
                        "vs this engine, mnist-lenet300-keras, smallest_weights_global",
                        table(["sparsity", "Keras batch", "calc_prune_mask + apply + evaluate", "their sparsity",
                               "accuracy", "ours (live)", "our accuracy", "theirs/ours"],
                              [[row["sparsity"], row["batch_size"], _t(row["seconds"]), f"{row['actual_sparsity']:.4f}",
                                f"{row['accuracy']:.4f}", _t(row["ours_seconds"]), f"{row['ours_accuracy']:.4f}",
                                f"{row['ratio_theirs_to_ours']:.1f}x"] for row in b["rows"]])
                        + f"\n\nNote: {b['patch']}"))
    c = r.get("c_sweep")
    if c:
        out.append((f"c. Sweep: {c['criteria']} criteria x {c['sparsities']} sparsities = {c['evaluations']} "
                    "evaluations (LeNet-300-100)",
                    table(["evaluate", "total", "per evaluation"],
                          [[k, _t(c[f"{k}_seconds"]), _t(c[f"{k}_seconds"] / c["evaluations"])]
                           for k in ("plain", "fast")])))
    d, x = r.get("d_memory"), r.get("d_explorer")
    if d or x:
        rows = []
        if d:
            rows.append(["process with all zoo models loaded and evaluated", _mb(d["rss_bytes"]), _mb(d["peak_bytes"])])
        if x:
            rows.append(["streamlit run app, after the first page", _mb(x["VmRSS"]), _mb(x["VmHWM"])])
            for k in ("after_round_trips", "after_load_test"):
                if k in x:
                    rows.append([f"streamlit run app, {k.replace('_', ' ')}", _mb(x[k]["VmRSS"]), _mb(x[k]["VmHWM"])])
        out.append(("d. Memory (resident, from /proc)", table(["process", "RSS", "peak RSS"], rows)))
        if x:
            out.append(("d. Explorer cold start", table(["health endpoint answers", "accuracy shown in Chromium"],
                                                     [[_t(x["health_seconds"]), _t(x["first_metric_seconds"])]])))
    for key, title in (("e_round_trip",
                        "e. Browser round trip: slider key press -> new accuracy on screen"),
                       ("e_round_trip_browser_niced",
                        "e. The same with Chromium at nice 19 (server first on the CPU)")):
        e = {k: v for k, v in (r.get(key) or {}).items() if isinstance(v, dict)}
        if not e:
            continue
        out.append((title,
                    table(["family", "model", "moves", "median", "max", "server: one evaluation (median)"],
                          [[f, v["model"], v["moves"], _t(v["median_seconds"]), _t(v["max_seconds"]),
                            _t(v.get("server_evaluation_median_seconds"))] for f, v in e.items()])))
    f = r.get("f_load_test")
    if f:
        out.append((f"f. Load test: {f['sessions']} concurrent sessions x {f['moves_each']} moves",
                    table(["completed", "p50", "p90", "p95", "max", "wall", "isolation"],
                          [[f["completed"], _t(f["p50"]), _t(f["p90"]), _t(f["p95"]), _t(f["max"]),
                            _t(f["wall_seconds"]), "ok" if f["isolation_ok"] else "; ".join(f["mismatches"])]])
                    + (f"\n\nNot completed: {'; '.join(f['problems'])}" if f["problems"] else "")))
    g = r.get("g_worker")
    if g:
        out.append(("g. An uploaded model evaluated in its sandboxed worker vs in-process "
                    "(full test set, large_final global)",
                    table(["model", "sparsity", "in-process", "worker", "worker/in-process", "same accuracy",
                           "first load in a new worker"],
                          [[row["model"], f"{row['sparsity']:.1f}", _t(row["in_process"]), _t(row["worker"]),
                            f"{row['ratio']:.2f}x", "yes" if row["same_accuracy"] else "**no**",
                            _t(row["first_load_seconds"])] for row in g["rows"]])))
    out += class_tables(r)
    return out


def _ms(x) -> str:
    return "-" if x is None else _t(x)


def class_tables(r: dict) -> list:
    """Parts h, i, j (benchmarks/class_load.py)."""
    out = []
    cpus = r.get("class_cpus") or {}
    pinned = f" (server on cores {cpus.get('server', '?')}, generator on {cpus.get('client', '?')})"
    h = r.get("h_cpu_per_move")
    if h:
        out.append(("h. Server CPU per slider move vs one full-test evaluation in a plain process" + pinned,
                    table(["family", "model", "moves", "server CPU per move", "plain: full test set",
                           "move/full", "plain: the page's set", "move/page set", "wall per move (median)",
                           "wrong results"],
                          [[row["family"], row["model"], row["moves"], _t(row["cpu_seconds_per_move"]),
                            _t(row["plain"]["full"]["cpu_seconds"]), f"{row['ratio_to_full']:.2f}x",
                            f"{_t(row['plain']['page']['cpu_seconds'])} ({row['plain']['page']['images']:,})",
                            f"{row['ratio_to_page_set']:.2f}x", _t(row["wall_seconds_median"]),
                            len(row["wrong"])] for row in h["rows"] if "error" not in row])
                    + "".join(f"\n\nNot measured, {row['family']}: {row['error']}" for row in h["rows"]
                              if "error" in row)))
    i = r.get("i_cold_start")
    if i:
        out.append(("i. Cold start: `streamlit run app` -> first accuracy" + pinned,
                    table(["in Chromium (median)", "runs", "Chromium: page's websocket open",
                           "Chromium: last server message before the accuracy showed", "over the websocket (median)",
                           "TensorFlow loaded"],
                          [[_t(i["chromium_median"]), ", ".join(_t(x) for x in i["chromium_seconds"]),
                            _t(i.get("chromium_websocket_open_median")), _t(i.get("chromium_last_message_median")),
                            _t(i["websocket_median"]), "yes" if i["tensorflow_loaded"] else "no"]])))
    j = r.get("j_class")
    if j:
        rows = [_load_row(j["mnist"])] + [_load_row(c) for c in j.get("cifar", [])]
        out.append(("j. Concurrent websocket sessions, a move every 3-5 s (exact-% box, every setting new)" + pinned,
                    table(["model", "sessions", "seconds", "moves", "p50", "p95", "max", "full run p50",
                           "errors", "mix-ups"], rows)
                    + "".join(f"\n\n{c['model']}: " + "; ".join((c["errors"] + c["mixups"])[:5])
                              for c in [j["mnist"], *j.get("cifar", [])] if c["errors"] or c["mixups"])))
        check = j.get("chromium_check")
        if check:
            g = check["websocket"]
            browsers = [check[k] for k in ("chromium", "chromium_alone") if k in check]
            out.append(("j. The generator beside real Chromium sessions (same server, mnist-lenet300-torch)",
                        table(["client", "sessions", "moves", "p50", "p95", "max", "problems"],
                              [["Chromium (benchmarks/browser.py)", b["sessions"], b["completed"], _ms(b["p50"]),
                                _ms(b["p95"]), _ms(b["max"]), len(b["problems"]) + len(b["mismatches"])]
                               for b in browsers]
                              + [["websocket generator", g["sessions"], g["moves"], _ms(g["p50"]), _ms(g["p95"]),
                                  _ms(g["max"]), len(g["errors"]) + len(g["mixups"])]])))
        mem = j.get("memory")
        if mem:
            out.append(("j. Server memory after every zoo model was visited",
                        table(["after", "RSS", "peak RSS", "moves answered", "errors (of which timeouts)"],
                              [[k, _mb(v["VmRSS"]), _mb(v["VmHWM"]), v.get("moves", ""), _errors(v.get("errors", []))]
                               for k, v in mem["after_each"].items()]
                              + [["all (end)", _mb(mem["VmRSS"]), _mb(mem["VmHWM"]), "", ""]])))
    return out


def _errors(errors: list) -> str:
    timeouts = sum("TimeoutError" in e for e in errors)
    return f"{len(errors)} ({timeouts})" if errors else "0"


def _load_row(c: dict) -> list:
    return [c["model"], c["sessions"], f"{c['seconds']:.0f}", c["moves"], _ms(c["p50"]), _ms(c["p95"]),
            _ms(c["max"]), _ms(c["full_run"]["p50"]), len(c["errors"]), len(c["mixups"])]


def class_targets(r: dict) -> list:
    rows = []
    for row in (r.get("h_cpu_per_move") or {}).get("rows", []):
        if row["model"].startswith("mnist") and "error" in row:
            rows.append([f"server CPU per move <= 2x one plain full evaluation ({row['model']})", "not measured",
                         False])
        elif row["model"].startswith("mnist"):
            rows.append([f"server CPU per move <= 2x one plain full evaluation ({row['model']})",
                         f"{row['ratio_to_full']:.2f}x", row["ratio_to_full"] <= 2.0])
    i = r.get("i_cold_start")
    if i:
        rows.append(["cold start -> first accuracy in Chromium <= 5 s", f"{i['chromium_median']:.1f} s",
                     i["chromium_median"] <= 5.0])
    j = r.get("j_class")
    if j:
        c = j["mnist"]
        ok = c["p50"] is not None and c["p50"] <= 1.0 and c["p95"] <= 3.0
        rows.append([f"{c['sessions']} sessions on {c['model']}: p50 <= 1 s, p95 <= 3 s",
                     f"p50 {_ms(c['p50'])}, p95 {_ms(c['p95'])}", ok])
        rows.append([f"{c['sessions']} sessions: no error, no session shown another's result",
                     f"{c['moves']} moves checked, {len(c['errors'])} errors, {len(c['mixups'])} mix-ups",
                     not c["errors"] and not c["mixups"]])
        if j.get("memory"):
            rows.append(["server RSS after every zoo model was visited <= 2 GB", _mb(j["memory"]["VmHWM"]) + " peak",
                         j["memory"]["VmHWM"] <= 2 * 2**30])
    return rows


def print_tables(r: dict):
    print(markdown(r))


def targets(r: dict) -> list:
    """[target, measured, met] rows for the targets the issue sets (reported, never asserted)."""
    rows = []
    for m in (r.get("a_live") or {}).get("models", []):
        if m["model"] == "mnist-lenet300-torch":
            worst = max(s["ratio_live_to_dense"] for s in m["sparsities"])
            rows.append(["LeNet-300-100 live <= 1.2x dense forward (every sparsity)", f"worst {worst:.2f}x",
                         worst <= 1.2])
            worst = max(s["ratio_live_to_torch_prune"] for s in m["sparsities"])
            rows.append(["LeNet-300-100 live no slower than torch.nn.utils.prune (every sparsity)",
                         f"worst {worst:.2f}x", worst <= 1.0])
    for key, how in (("e_round_trip", ""), ("e_round_trip_browser_niced", ", browser niced")):
        for family, v in (r.get(key) or {}).items():
            if isinstance(v, dict):
                limit = 2.0 if family.startswith("CIFAR") else 1.0  # the targets, CIFAR on the CPU subset
                median = v["median_seconds"]
                rows.append([f"browser round trip <= {limit:g} s median ({family}{how})",
                             "no measurable move" if median is None else f"{median:.2f} s",
                             median is not None and median <= limit])
    c = r.get("c_sweep")
    if c:
        for k in ("plain", "fast"):
            rows.append([f"sweep of {c['evaluations']} evaluations <= 20 s ({k} evaluate)",
                         f"{c[f'{k}_seconds']:.1f} s", c[f"{k}_seconds"] <= 20])
    d, x = r.get("d_memory"), r.get("d_explorer")
    if d:
        rows.append(["memory with all zoo models loaded <= 3 GB", _mb(d["peak_bytes"]) + " peak",
                     d["peak_bytes"] <= 3 * 2**30])
    if x:
        peak = max([x["VmHWM"]] + [x[k]["VmHWM"] for k in ("after_round_trips", "after_load_test") if k in x])
        rows.append(["explorer process <= 3 GB", _mb(peak) + " peak", peak <= 3 * 2**30])
    f = r.get("f_load_test")
    if f:
        rows.append(["8 sessions: each sees only its own results",
                     f"{f['completed']} of {f['sessions'] * f['moves_each']} moves checked, "
                     f"{len(f['mismatches'])} mismatches", f["isolation_ok"]])
    for row in (r.get("g_worker") or {}).get("rows", []):
        rows.append([f"sandboxed worker overhead < 20% ({row['model']}, {row['sparsity']:.0%})",
                     f"{row['ratio']:.2f}x", row["ratio"] < 1.2])
    return rows + class_targets(r)


def markdown(r: dict) -> str:
    m = r["machine"]
    head = (f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), GPU: {m['gpu']}, torch threads "
            f"{m['torch_threads']}; load average {m['load_average'][0]:.1f} at the start, "
            f"{m['load_average_end'][0]:.1f} at the end; {r['repeats']} repeats per median.\n\n"
            + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    parts = [head, "### Targets\n\n" + table(["target", "measured", "met"],
                                               [[t, v, "yes" if ok else "**no**"] for t, v, ok in targets(r)])]
    parts += [f"### {title}\n\n{body}" for title, body in tables(r)]
    return "\n\n".join(parts) + "\n"
