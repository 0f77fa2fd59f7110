"""The HTML report template (jinja2). Self-contained: inline CSS, images as data URIs, no scripts, no URLs."""

# ruff: noqa: E501  (HTML rows read best one per line; wrapping them would add whitespace to the output)

REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.title }} - {{ r.provenance.run_id }}</title>
<style>
 body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
        margin: 0; background: #f6f8fa; }
 main { max-width: 1180px; margin: 0 auto; padding: 24px; background: #fff; }
 h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; border-bottom: 1px solid #d0d7de;
 padding-bottom: 4px; margin-top: 32px; } h3 { font-size: 16px; margin: 20px 0 8px; }
 .muted { color: #57606a; } .small { font-size: 12px; }
 .badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; color: #fff;
          font-size: 13px; vertical-align: middle; }
 .alert { border-left: 4px solid #9a6700; padding: 0.4em 0.8em; background: #fff8c5; }
 .pass { background: #1a7f37; } .warn { background: #9a6700; } .fail { background: #cf222e; }
 .cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 16px 0; }
 .card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 14px; }
 .card .v { font-size: 22px; font-weight: 600; } .card .k { color: #57606a; font-size: 12px; }
 table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
 th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
 th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
 tr.chosen td { background: #dafbe1; }
 .figs { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
 figure { margin: 0; } figcaption { color: #57606a; font-size: 12px; max-width: 640px; }
 img.figure { max-width: 100%; border: 1px solid #eaeef2; }
 code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; font-size: 12px; word-break: break-all; }
</style>
</head>
<body><main>
{% set h = r.headline %}{% set cur = h.cost.prices.currency %}
<h1>{{ r.title }} <span class="badge {{ r.overall.value }}">{{ r.overall.value | upper }}</span></h1>
<div class="muted">run <code>{{ r.provenance.run_id }}</code> &middot; {{ r.provenance.created_at }} &middot;
 source <code>{{ r.provenance.source_uri or "in-memory arrays" }}</code> &middot; preset {{ r.provenance.preset }}</div>

<h2>Decision summary{% if r.kind == "sweep" %} (recommended IPC {{ r.recommended_ipc or "none" }}){% endif %}</h2>
{% if r.kind == "sweep" %}<p>{% if r.recommended_ipc %}The smallest images-per-class setting that passes the policy
 is <b>IPC {{ r.recommended_ipc }}</b>; the figures below are for it.{% else %}<b>No IPC in the sweep passes the
 policy</b>; the figures below are for IPC {{ h.ipc }}. Try larger IPCs or relax the policy.{% endif %}</p>{% endif %}
<div class="cards">
 <div class="card"><div class="k">storage reduction (IPC {{ h.ipc }})</div>
  <div class="v">{{ "{:,.1f}".format(h.cost.reduction_ratio) }}&times;</div>
  <div class="small">{{ h.cost.source_bytes | size }} &rarr; {{ h.cost.condensed_bytes | size }}</div></div>
 <div class="card"><div class="k">storage saved per month</div>
  <div class="v">{{ h.cost.storage_saving_month | money(cur) }}</div>
  <div class="small">transfer per read-out: {{ h.cost.source_transfer_month | money(cur) }} &rarr;
   {{ h.cost.condensed_transfer_month | money(cur) }}</div></div>
 <div class="card"><div class="k">condensed accuracy (mean &plusmn; std)</div>
  <div class="v">{% if h.accuracy.condensed %}{{ h.accuracy.condensed.mean | pct }}{% else %}-{% endif %}</div>
  <div class="small">{% if h.accuracy.condensed %}&plusmn; {{ h.accuracy.condensed.std | pct }};
   {% endif %}full data {{ h.accuracy.full.mean | pct if h.accuracy.full else "-" }}; random
   {{ h.accuracy.random.mean | pct if h.accuracy.random else "-" }}</div></div>
 <div class="card"><div class="k">retention of full-data accuracy</div>
  <div class="v">{{ h.accuracy.retention | pct if h.accuracy.retention is not none else "-" }}</div>
  <div class="small">break-even: {{ h.cost.break_even_runs | runs }}</div></div>
</div>
{% set sc = h.decisions.get("subset_check") %}{% set fb = h.decisions.get("fallback") %}
{% if fb %}<p class="alert"><b>The delivered set is a real subset ({{ fb.subset }}), not the distilled set:</b> {{ fb.reason }}
 (fallback="subset").</p>
{% elif sc and sc.subset_is_better %}<p class="alert"><b>A real subset trains better than the condensed set.</b> On the
 validation split (carved from the training data) the {{ sc.best_subset }} subset of the same size scored
 {{ sc.subsets[sc.best_subset] | pct }} against {{ sc.condensed | pct }}. Recommendation: use that subset (rerun with
 fallback="subset"), or a larger IPC.</p>
{% elif sc %}<p>On the validation split the condensed set scored {{ sc.condensed | pct }}, ahead of the best real subset
 of the same size ({{ sc.best_subset }}, {{ sc.subsets[sc.best_subset] | pct }}).</p>{% endif %}

{% if r.kind == "sweep" %}
<h2>Compression sweep</h2>
<table><tr><th>IPC</th><th>images</th><th>condensed</th><th>random</th><th>retention</th><th>export</th>
<th>reduction</th><th>storage / month</th><th>distillation cost</th><th>break-even runs</th><th>verdict</th></tr>
{% for e in r.entries %}<tr class="{{ 'chosen' if e.ipc == r.recommended_ipc else '' }}"><td class="n">{{ e.ipc }}</td>
<td class="n">{{ e.images }}</td>
<td class="n">{% if e.accuracy.condensed %}{{ e.accuracy.condensed.mean | pct }} &plusmn; {{ e.accuracy.condensed.std | pct }}{% endif %}</td>
<td class="n">{{ e.accuracy.random.mean | pct if e.accuracy.random else "-" }}</td>
<td class="n">{{ e.accuracy.retention | pct if e.accuracy.retention is not none else "-" }}</td>
<td class="n">{{ e.cost.condensed_bytes | size }}</td><td class="n">{{ "{:,.1f}".format(e.cost.reduction_ratio) }}&times;</td>
<td class="n">{{ e.cost.condensed_storage_month | money(cur) }}</td><td class="n">{{ e.cost.distillation_cost | money(cur) }}</td>
<td class="n">{{ e.cost.break_even_runs | runs }}</td>
<td><span class="badge {{ e.verdict.status.value }}">{{ e.verdict.status.value }}</span></td></tr>{% endfor %}
</table>
<figure><img class="figure" data-figure="sweep" alt="accuracy and size against IPC" src="{{ figs.sweep }}">
<figcaption>Holdout accuracy (mean &plusmn; std over evaluation seeds) and export size against IPC. Scoring and
experts were trained once and shared by every IPC.</figcaption></figure>
{% endif %}

{% for e in r.entries %}{% set c = e.cost %}
<h2>IPC {{ e.ipc }}: {{ e.images }} condensed images <span class="badge {{ e.verdict.status.value }}">{{ e.verdict.status.value | upper }}</span></h2>
{% set pr = e.decisions.get("probes") %}{% set sc = e.decisions.get("subset_check") %}
{% if pr or sc %}<h3>Settings chosen on the validation split</h3>
{% if pr %}<table><tr><th>candidate</th><th>changes</th><th>validation accuracy</th><th>seconds</th></tr>
{% for p in pr.probes %}<tr><td>{{ p.name }}{% if p.name == pr.chosen %} <b>(chosen)</b>{% endif %}</td>
 <td><code>{{ p.changes | tojson }}</code></td><td class="n">{{ p.validation_accuracy | pct }}</td>
 <td class="n">{{ p.seconds | secs }}</td></tr>{% endfor %}</table>
<p class="small muted">Each probe ran {{ pr.iterations }} distillation iterations; together {{ pr.seconds | secs }}.
A candidate replaces {{ pr.probes[0].name }} only when it scores more than {{ (pr.margin or 0) | pct }} higher (one
standard error of an accuracy on the validation split).{% for name, other in (pr.same_as or {}).items() %}
{{ name }} was not probed: it sets what {{ other }} sets.{% endfor %}</p>{% endif %}
{% if sc %}<table><tr><th>set of {{ e.images }} images</th><th>validation accuracy</th></tr>
<tr><td>condensed</td><td class="n">{{ sc.condensed | pct }}</td></tr>
{% for name, value in sc.subsets.items() %}<tr><td>real subset: {{ name }}</td><td class="n">{{ value | pct }}</td></tr>{% endfor %}
</table>{% endif %}{% endif %}
<h3>Cost</h3>
<table>
<tr><th></th><th>source</th><th>condensed</th></tr>
<tr><td>stored bytes</td><td class="n">{{ "{:,}".format(c.source_bytes) }} ({{ c.source_bytes | size }})</td>
 <td class="n">{{ "{:,}".format(c.condensed_bytes) }} ({{ c.condensed_bytes | size }})</td></tr>
<tr><td>basis</td><td>{{ c.source_bytes_basis }}</td><td>{{ c.condensed_bytes_basis }}</td></tr>
<tr><td>storage per month</td><td class="n">{{ c.source_storage_month | money(cur) }}</td><td class="n">{{ c.condensed_storage_month | money(cur) }}</td></tr>
<tr><td>transfer per month ({{ c.prices.reads_per_month }} read-outs)</td><td class="n">{{ c.source_transfer_month | money(cur) }}</td><td class="n">{{ c.condensed_transfer_month | money(cur) }}</td></tr>
<tr><td>time to train one model (measured)</td><td class="n">{{ c.full_train_seconds | secs }}</td><td class="n">{{ c.condensed_train_seconds | secs }}</td></tr>
<tr><td>cost of one training run</td><td class="n">{{ c.full_train_cost | money(cur) }}</td><td class="n">{{ c.condensed_train_cost | money(cur) }}</td></tr>
</table>
<p>Reduction <b>{{ "{:,.1f}".format(c.reduction_ratio) }}&times;</b>. Break-even: {{ c.break_even_note }}
 (distillation compute {{ c.distillation_seconds | secs }} = {{ c.distillation_cost | money(cur) }}).</p>
<table><tr><th>stage</th><th>wall time</th><th>cost ({{ c.hardware | upper }} at {{ c.prices.hour_price(c.hardware) | money(cur) }}/h)</th></tr>
{% for s in c.stages %}<tr><td>{{ s.stage }}</td><td class="n">{{ s.seconds | secs }}</td><td class="n">{{ s.cost | money(cur) }}</td></tr>{% endfor %}
<tr><th>total</th><th class="n">{{ c.compute_seconds | secs }}</th><th class="n">{{ c.compute_cost | money(cur) }}</th></tr></table>
{% if r.kind == "sweep" and loop.index > 1 %}<p class="small muted">Scoring and experts ran once, at the first IPC;
 the break-even above counts them for this IPC too, as if it had been run alone.</p>{% endif %}

<h3>Accuracy on the holdout</h3>
<table><tr><th>trained on</th><th>mean</th><th>std</th><th>per seed</th><th>train time / model</th></tr>
{% for name in ["full", "random", "condensed"] %}{% set s = e.accuracy[name] %}{% if s %}
<tr><td>{{ {"full": "full data (reference)", "random": "random subset, same size", "condensed": "condensed (PAD)"}[name] }}</td>
<td class="n">{{ s.mean | pct }}</td><td class="n">{{ s.std | pct }}</td>
<td class="n">{% for a in s.accuracies %}{{ a | pct }}{{ ", " if not loop.last }}{% endfor %}</td>
<td class="n">{{ s.seconds_per_model | secs }}</td></tr>{% endif %}{% endfor %}
</table>
<p>Retention (condensed / full): <b>{{ e.accuracy.retention | pct if e.accuracy.retention is not none else "not measured" }}</b>.</p>
{% if e.accuracy.group_accuracy %}<table><tr><th>group</th>{% for k in e.accuracy.group_accuracy.values() | first %}<th>{{ k }}</th>{% endfor %}</tr>
{% for g, row in e.accuracy.group_accuracy.items() %}<tr><td>{{ g }}</td>{% for v in row.values() %}<td class="n">{{ v | pct }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p class="small muted">Per-group accuracy was not measured in this run (it needs a group column in the source).</p>{% endif %}
{% if e.accuracy.cross_architecture %}<table><tr><th>architecture</th><th>mean</th><th>std</th></tr>
{% for arch, v in e.accuracy.cross_architecture.items() %}<tr><td>{{ arch }}</td><td class="n">{{ v.mean | pct }}</td><td class="n">{{ v.std | pct }}</td></tr>{% endfor %}</table>
{% else %}<p class="small muted">Cross-architecture evaluation was not run.</p>{% endif %}

<div class="figs">
<figure><img class="figure" data-figure="recall-ipc{{ e.ipc }}" alt="per-class recall" src="{{ figs.recall[e.ipc] }}">
<figcaption>Per-class recall on the holdout: condensed (blue) vs full data (green) vs a random subset of
 the same size (yellow). Mean over evaluation seeds.</figcaption></figure>
<figure><img class="figure" data-figure="grid-ipc{{ e.ipc }}" alt="condensed images per class" src="data:image/png;base64,{{ e.grid_png }}">
<figcaption>The condensed images, one row per class (each image contrast-stretched for display).</figcaption></figure>
</div>

<h3>Policy verdict: {{ e.verdict.status.value | upper }}{% if e.verdict.policy_name %} (policy {{ e.verdict.policy_name }}){% endif %}</h3>
{% if e.verdict_basis == "default" %}<p class="small muted">No policy was given: judged with the default limits for IPC {{ e.ipc }}.</p>{% endif %}
<table><tr><th>rule</th><th>status</th><th>measured</th><th>limit</th><th>explanation</th></tr>
{% for rule in e.verdict.rules %}<tr><td><code>{{ rule.rule }}</code></td><td><span class="badge {{ rule.status.value }}">{{ rule.status.value }}</span></td>
<td class="n">{{ rule.measured | num }}</td><td class="n">{{ rule.limit | num }}</td><td>{{ rule.message }}</td></tr>{% endfor %}
</table>
{% if e.verdict.remediation %}<p>Remediation:</p><ul>{% for fix in e.verdict.remediation %}<li>class <b>{{ fix.class_name }}</b>:
 recall {{ fix.condensed_recall | pct }} must reach {{ fix.target_recall | pct }}; try {{ fix.suggested_ipc or ("+" ~ fix.extra_ipc) }} images per class.</li>{% endfor %}</ul>{% endif %}
{% endfor %}

<h2>Distillation loss</h2>
<figure><img class="figure" data-figure="loss" alt="distillation loss curve" src="{{ figs.loss }}">
<figcaption>Trajectory-matching loss per iteration (normalised: 1.0 means no better than the expert's own start).</figcaption></figure>

<h2>Provenance</h2>
{% set p = r.provenance %}
<table>
<tr><th>run id</th><td><code>{{ p.run_id }}</code></td></tr><tr><th>created</th><td>{{ p.created_at }}</td></tr>
<tr><th>source</th><td><code>{{ p.source_uri or "in-memory arrays" }}</code> ({{ p.source_format or "arrays" }}, {{ p.source_rows }} rows{% if p.source_held != "memory" %}; training images held in a {{ p.source_held }}{% endif %})</td></tr>
<tr><th>fingerprint</th><td><code>{{ p.source_fingerprint or "-" }}</code></td></tr>
<tr><th>holdout</th><td><code>{{ p.split | tojson if p.split else "-" }}</code></td></tr>
<tr><th>classes</th><td>{{ p.class_names | join(", ") }}</td></tr>
<tr><th>policy</th><td>{{ p.policy_name or ("default limits per IPC" if not p.policy else "unnamed") }}</td></tr>
<tr><th>preset / seed</th><td>{{ p.preset }} / {{ p.seed }}</td></tr>
<tr><th>runtime / hardware</th><td>{{ p.runtime }}{% if p.runtime_options %} ({% for k, v in p.runtime_options.items() %}{{ k | replace("_", " ") }} <code>{{ v }}</code>{{ ", " if not loop.last }}{% endfor %}){% endif %} / {{ p.hardware }}</td></tr>
<tr><th>versions</th><td>{% for k, v in p.versions.items() %}{{ k }} {{ v }}{{ "; " if not loop.last }}{% endfor %}</td></tr>
<tr><th>timings (s)</th><td>{% for e in r.entries %}IPC {{ e.ipc }}: {% for k, v in e.timings.items() %}{{ k }} {{ "%.1f" | format(v) }}{{ ", " if not loop.last }}{% endfor %}<br>{% endfor %}</td></tr>
{% if r.estimate %}<tr><th>estimate vs actual</th><td>{{ r.estimate.line }}<br>
<table class="small"><tr><th>stage</th><th>estimated (s)</th><th>actual (s)</th></tr>
{% for row in r.estimate.rows %}<tr><td>{{ row.stage }}</td><td>{{ "%.1f" | format(row.estimated_s) }}</td><td>{{ "%.1f" | format(row.actual_s) if row.actual_s is not none else ("not done" if r.estimate.partial else "-") }}</td></tr>
{% endfor %}<tr><td>total</td><td>{{ "%.1f" | format(r.estimate.estimated_total_s) }}</td><td>{{ "%.1f" | format(r.estimate.actual_total_s) }}</td></tr>
<tr><td>peak host memory (MiB)</td><td>{{ "%.0f" | format(r.estimate.estimated_peak_host_bytes / 1048576) }}</td><td>{{ "%.0f" | format(r.estimate.actual_peak_host_bytes / 1048576) if r.estimate.actual_peak_host_bytes else "-" }}</td></tr>
</table>{% if r.estimate.partial %}<b>The budget stopped this run: it is partial.</b>{% endif %}</td></tr>{% endif %}
<tr><th>chosen during the run</th><td>{% for e in r.entries %}{% set u = e.decisions.get("unroll") %}{% if u %}IPC {{ e.ipc }}: unroll <b>{{ u.mode }}</b> ({{ u.reason }})<br>{% endif %}{% set t = e.decisions.get("trajectories") %}{% if t %}IPC {{ e.ipc }}: trajectories in <code>{{ t.where }}</code> ({{ t.reason }})<br>{% endif %}{% endfor %}</td></tr>
<tr><th>exports</th><td>{% for e in r.entries %}IPC {{ e.ipc }}: <code>{{ e.export_uri or "not exported" }}</code><br>{% endfor %}</td></tr>
<tr><th>prices</th><td>{{ cur }}: storage {{ h.cost.prices.storage_per_gb_month }}/GB-month, transfer {{ h.cost.prices.transfer_per_gb }}/GB,
 CPU {{ h.cost.prices.cpu_hour }}/h, GPU {{ h.cost.prices.gpu_hour }}/h (1 GB = 10<sup>9</sup> bytes; defaults are AWS
 on-demand list prices, us-east-1: S3 Standard, internet egress, m7i.large, g5.xlarge).</td></tr>
</table>
<p class="small muted">pad-sdk report v{{ r.report_version }}. Machine-readable twin: report.json.</p>
</main></body></html>
"""
