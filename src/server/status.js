/* status.js - cassette server's status page (status.html): reads the
 * server's JSON API every few seconds and shows the clusters with their
 * newest backups, the running operations with their progress, the tasks
 * and their next run, recent failures and the last restore drill.
 * The bearer token (asked for when GET /version says the server has
 * tokens) is kept in sessionStorage only: this tab, until it is closed.
 * Whatever the API says goes into the page as text (textContent), never
 * as HTML. */
'use strict';

(function () {
  const REFRESH_MS = 3000;       /* clusters, tasks, runs */
  const BACKUPS_MS = 30000;      /* a cluster's backups: a listing of its repository */
  const STALE_S = 2 * 3600;      /* a newest complete backup older than this is shown as stale */
  const TOKEN_KEY = 'cassette.token';

  const page = {
    needToken: false,
    timer: null,
    backups: {},      /* cluster id -> {at, list, error} */
    running: '',      /* ids of the running runs last seen: a change re-reads the backups */
  };

  function $(id) { return document.getElementById(id); }

  /* A new element with a class and a text (never HTML). */
  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function td(content, cls) {
    const cell = h('td', cls);
    if (content instanceof Node) cell.appendChild(content);
    else if (content !== undefined && content !== null) cell.textContent = String(content);
    return cell;
  }

  function tr(cells) {
    const r = h('tr');
    for (const c of cells) r.appendChild(c instanceof HTMLTableCellElement ? c : td(c));
    return r;
  }

  /* Replace the rows of tbody id; a row saying empty when there are none. */
  function fillTable(id, rows, empty) {
    const body = $(id);
    if (!rows.length) {
      const cell = td(empty, 'empty');
      cell.colSpan = body.parentElement.querySelectorAll('thead th').length || 1;
      rows = [tr([cell])];
    }
    body.replaceChildren(...rows);
  }

  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }

  function span(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '-';
    const s = Math.abs(Math.round(seconds));
    if (s < 90) return s + ' s';
    if (s < 90 * 60) return Math.round(s / 60) + ' min';
    if (s < 48 * 3600) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }

  function now() { return Date.now() / 1000; }

  /* Seconds since the epoch as "2026-12-06 20:15:00 UTC". */
  function when(t) {
    if (typeof t !== 'number' || !(t > 0)) return '-';
    return new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  /* An ISO time ("2026-12-06T20:15:00Z") as seconds, or NaN. */
  function isoSeconds(text) {
    return typeof text === 'string' ? Date.parse(text) / 1000 : NaN;
  }

  function note(text) {
    const n = $('note');
    n.textContent = text || '';
    n.hidden = !text;
  }

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /* GET path of the API: its JSON document, or an HttpError. */
  async function get(path) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit' });
    let doc = null;
    try { doc = await r.json(); } catch (e) { doc = null; }
    if (!r.ok) throw new HttpError(r.status, (doc && typeof doc.error === 'string') ? doc.error : 'HTTP ' + r.status);
    return doc;
  }

  /* ---- clusters and their backups ---- */

  /* The backups of a listing grouped by name (one per node in a cluster
   * backup), newest first: {name, finished, complete, size, nodes}. */
  function groupBackups(list) {
    const by = new Map();
    for (const b of list || []) {
      if (!b || typeof b.name !== 'string') continue;
      let g = by.get(b.name);
      if (!g) {
        g = { name: b.name, finished: NaN, started: NaN, complete: true, size: 0, nodes: 0 };
        by.set(b.name, g);
      }
      const fin = isoSeconds(b.finished), st = isoSeconds(b.started);
      if (!(g.finished >= fin)) g.finished = fin;
      if (!(g.started <= st)) g.started = st;
      g.complete = g.complete && b.complete === true && !(b.set && b.set.complete === false);
      g.size += typeof b.size === 'number' ? b.size : 0;
      g.nodes += 1;
    }
    const at = g => (isFinite(g.finished) ? g.finished : (isFinite(g.started) ? g.started : 0));
    return Array.from(by.values()).sort((a, b) => at(b) - at(a));
  }

  async function loadBackups(clusters, force) {
    const t = now();
    const wanted = clusters.filter(c => force || !page.backups[c.id] || t - page.backups[c.id].at >= BACKUPS_MS / 1000);
    await Promise.all(wanted.map(async c => {
      const entry = { at: t, list: null, error: null };
      try {
        const doc = await get('/v1/clusters/' + encodeURIComponent(c.id) + '/backups');
        entry.list = groupBackups(doc && doc.backups);
      } catch (e) {
        if (e.status === 401) throw e;
        entry.error = e.message;
      }
      page.backups[c.id] = entry;
    }));
  }

  function clusterRow(c) {
    const idCell = td(null, 'cluster');
    idCell.appendChild(h('strong', 'cluster-id', c.id));
    if (c.name) idCell.appendChild(h('div', 'muted', c.name));
    idCell.dataset.cluster = c.id;
    const nodes = Array.isArray(c.nodes) ? c.nodes : [];
    const up = nodes.filter(n => n && n.ok !== false).length;
    const nodesCell = td(nodes.length ? up + ' of ' + nodes.length + ' reachable' : '-', up < nodes.length ? 'bad' : '');
    const b = page.backups[c.id];
    if (!b || (!b.list && !b.error)) return tr([idCell, nodesCell, td('reading the repository...', 'muted'), td(''), td(''), td('')]);
    if (b.error) {
      const cell = td('repository: ' + b.error, 'bad error');
      cell.colSpan = 4;
      return tr([idCell, nodesCell, cell]);
    }
    const newest = b.list.find(g => g.complete);
    const recent = h('div');
    for (const g of b.list.slice(0, 3)) {
      recent.appendChild(h('div', g.complete ? '' : 'muted',
        g.name + (g.complete ? '' : ' (incomplete)') + ' - ' + (isFinite(g.finished) ? span(now() - g.finished) + ' ago' : 'unfinished')));
    }
    if (!b.list.length) recent.appendChild(h('span', 'muted', 'none'));
    if (!newest) return tr([idCell, nodesCell, td('none yet', 'bad'), td('-'), td('-'), td(recent)]);
    const age = now() - newest.finished;
    const ageCell = td(isFinite(age) ? span(age) : '-', 'backup-age' + (age > STALE_S ? ' stale' : ''));
    if (isFinite(newest.finished)) ageCell.title = when(newest.finished);
    return tr([idCell, nodesCell, td(newest.name + (newest.nodes > 1 ? ' (' + newest.nodes + ' nodes)' : ''), 'backup-name'),
               ageCell, td(bytes(newest.size)), td(recent)]);
  }

  /* ---- runs ---- */

  function bar(cls, done, total) {
    const p = h('progress', cls);
    if (typeof total === 'number' && total > 0) {
      p.max = total;
      p.value = Math.min(typeof done === 'number' ? done : 0, total);
    } else if (typeof done === 'number' && done > 0) {
      p.max = done;        /* the total is not known yet: what is done so far */
      p.value = done;
    }                      /* else: no value, an indeterminate bar */
    return p;
  }

  function runBlock(r) {
    const p = r.progress || {};
    const box = h('div', 'run');
    box.dataset.run = r.id;
    box.dataset.cluster = r.cluster;
    const head = h('div', 'label');
    head.appendChild(h('strong', null, (r.kind || 'run') + ' of ' + r.cluster + (r.task ? ' (task ' + r.task + ')' : '')));
    head.appendChild(h('span', 'muted', (p.phase ? p.phase + ' - ' : '') + 'started ' +
      (r.started ? span(now() - r.started) + ' ago' : '-') + ' - run ' + r.id));
    box.appendChild(head);
    const pct = p.bytes_total > 0 ? ' (' + Math.floor(100 * (p.bytes_done || 0) / p.bytes_total) + '%)' : '';
    const bl = h('div', 'label');
    bl.appendChild(h('span', null, 'bytes'));
    bl.appendChild(h('span', 'muted', bytes(p.bytes_done || 0) + ' of ' + (p.bytes_total > 0 ? bytes(p.bytes_total) : '?') + pct));
    box.appendChild(bl);
    box.appendChild(bar('bytes', p.bytes_done, p.bytes_total));
    const fl = h('div', 'label');
    fl.appendChild(h('span', null, 'files'));
    fl.appendChild(h('span', 'muted', (p.files_done || 0) + ' of ' + (p.files_total > 0 ? p.files_total : '?')));
    box.appendChild(fl);
    box.appendChild(bar('files', p.files_done, p.files_total));
    (Array.isArray(p.nodes) ? p.nodes : []).filter(n => n.state !== 'skipped').forEach(n => box.append(...nodeRows(n)));
    return box;
  }

  /* A cluster operation's node: its phase, state, bytes and a bar. */
  function nodeRows(n) {
    const l = h('div', 'label node');
    l.dataset.node = n.name;
    l.appendChild(h('span', null, n.name + ' - ' + (n.phase || '-') + ' - ' + n.state));
    l.appendChild(h('span', 'muted', n.bytes_total > 0 || n.bytes_done > 0
      ? bytes(n.bytes_done || 0) + ' of ' + (n.bytes_total > 0 ? bytes(n.bytes_total) : '?')
      : (n.files_done || 0) + ' of ' + (n.files_total > 0 ? n.files_total : '?')));
    const b = n.bytes_total > 0 || n.bytes_done > 0 ? bar('node', n.bytes_done, n.bytes_total)
                                                    : bar('node', n.files_done, n.files_total);
    b.dataset.node = n.name;
    return [l, b];
  }

  function showRunning(runs) {
    const div = $('running');
    if (!runs.length) {
      div.replaceChildren(h('p', 'empty', 'nothing running'));
      return;
    }
    div.replaceChildren(...runs.map(runBlock));
  }

  function showFailures(runs) {
    const t = r => r.ended || r.started || r.queued_at || 0;
    const rows = runs.slice().sort((a, b) => t(b) - t(a)).map(r =>
      tr([when(t(r)), r.cluster, r.kind, r.task || 'ad hoc', r.id, td(r.error || '(no message)', 'bad error')]));
    fillTable('failures', rows, 'no failed run');
  }

  function showDrill(runs) {
    const div = $('drill');
    const last = runs.find(r => r.state !== 'queued');
    if (!last) {
      div.replaceChildren(h('p', 'empty', 'no drill yet'));
      return;
    }
    const res = last.result || {};
    const rto = typeof res.rto_seconds === 'number' ? res.rto_seconds :
      (last.started && last.ended ? last.ended - last.started : NaN);
    const p = h('p', last.state === 'done' ? 'ok' : last.state === 'failed' ? 'bad' : '');
    p.textContent = 'drill of ' + last.cluster + ': ' + last.state + (last.ended ? ', ended ' + when(last.ended) : '') +
      (isFinite(rto) ? ', RTO ' + span(rto) : '') + (last.error ? ' - ' + last.error : '');
    div.replaceChildren(p);
  }

  function showTasks(tasks) {
    const rows = tasks.map(t => {
      const next = typeof t.next === 'number' && t.next > 0 ? when(t.next) + ' (in ' + span(t.next - now()) + ')' :
        (t.enabled === false ? 'disabled' : (t.schedule ? '-' : 'when asked'));
      return tr([t.id, t.cluster, t.kind, t.schedule ? t.schedule + (t.timezone && t.timezone !== 'UTC' ? ' ' + t.timezone : '') : 'none',
                 td(t.enabled === false ? 'no' : 'yes', t.enabled === false ? 'muted' : ''), td(next, 'next')]);
    });
    fillTable('tasks', rows, 'no task');
  }

  /* ---- the loop ---- */

  function schedule() {
    clearTimeout(page.timer);
    page.timer = setTimeout(refresh, REFRESH_MS);
  }

  function askToken(text) {
    clearTimeout(page.timer);
    note(text);
    $('updated').textContent = '';
    $('token').focus();
  }

  async function refresh() {
    if (page.needToken && !sessionStorage.getItem(TOKEN_KEY)) {
      askToken('This server asks for a bearer token: give one of its tokens (a viewer token is enough).');
      return;
    }
    try {
      const [server, clusters, tasks, running, failed, drills] = await Promise.all([
        get('/v1/server'), get('/v1/clusters'), get('/v1/tasks'), get('/v1/runs?state=running'),
        get('/v1/runs?state=failed&limit=10'), get('/v1/runs?kind=drill&limit=5')]);
      const cl = clusters.clusters || [], run = running.runs || [];
      const ids = run.map(r => r.id).sort().join(' ');
      await loadBackups(cl, ids !== page.running);
      page.running = ids;
      $('server').textContent = 'server ' + (server.server || '?') + (server.leader === false ? ' (standby)' : '') +
        (typeof server.epoch === 'number' ? ', epoch ' + server.epoch : '');
      fillTable('clusters', cl.map(clusterRow), 'no cluster registered');
      showRunning(run);
      showTasks(tasks.tasks || []);
      showFailures(failed.runs || []);
      showDrill(drills.runs || []);
      note('');
      $('updated').textContent = 'updated ' + when(now());
      document.body.dataset.ready = '1';
      schedule();
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        askToken('The server refused that token: give another.');
        return;
      }
      note('cannot read the server: ' + e.message);
      schedule();
    }
  }

  async function start() {
    $('auth').addEventListener('submit', ev => {
      ev.preventDefault();
      const t = $('token').value.trim();
      $('token').value = '';
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      refresh();
    });
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      page.backups = {};
      refresh();
    });
    try {
      const v = await get('/version');
      page.needToken = v.tokens === true;
      $('version').textContent = 'cassette ' + (v.version || '?');
    } catch (e) {
      note('cannot read the server: ' + e.message);
    }
    refresh();
  }

  start();
}());
