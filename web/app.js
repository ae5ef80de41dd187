/* app.js - the dashboard's core: DOM helpers, the fetch wrapper, the session,
 * the hash router, live updates (one EventSource, polling as the fallback)
 * and the overview page. The other views register in VD.views from their
 * own files (task.js, version.js, executors.js, upload.js).
 *
 * Every string that comes from the daemon goes into the page through
 * textContent or setAttribute, never as markup. */
'use strict';

const VD = window.VD = { views: {}, session: null };

/* ---- DOM helpers ---------------------------------------------------- */

/* h('a', {href, class, text, on: {click: fn}}, child...) */
VD.h = function h(tag, props, ...kids) {
	const e = tag.includes(':') ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
		: document.createElement(tag);
	for (const [k, v] of Object.entries(props || {})) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k === 'text')
			e.textContent = String(v);
		else if (k === 'on')
			for (const [ev, fn] of Object.entries(v))
				e.addEventListener(ev, fn);
		else if (k === 'class')
			e.setAttribute('class', v);
		else
			e.setAttribute(k, v === true ? '' : String(v));
	}
	for (const k of kids.flat())
		if (k !== null && k !== undefined && k !== false)
			e.append(k instanceof Node ? k : String(k));
	return e;
};
const h = VD.h;

VD.enc = encodeURIComponent;

VD.human = function (n) {
	if (n === undefined || n === null || isNaN(n))
		return '';
	const u = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
	let i = 0;
	n = Number(n);
	while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
	return (i ? n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0) : String(n)) + ' ' + u[i];
};

VD.dur = function (ms) {
	if (ms === undefined || ms === null)
		return '';
	const s = ms / 1000;
	if (s < 1)
		return Math.round(ms) + ' ms';
	if (s < 60)
		return s.toFixed(s < 10 ? 1 : 0) + ' s';
	if (s < 3600)
		return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
	return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
};

const pad = (n) => String(n).padStart(2, '0');
VD.time = function (ms) {
	if (!ms)
		return '';
	const d = new Date(ms);
	return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
		pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
};

/* A monospace ID shortened to 12 hex, the whole one in the title. */
VD.id = function (id, n) {
	if (!id)
		return h('span', { class: 'muted', text: '—' });
	return h('code', { class: 'id', title: id, text: id.slice(0, n || 12) });
};

VD.word = (status) => String(status || '').trim().split(/[\s:]/)[0];

/* A status badge coloured by the status line's first word. */
VD.badge = function (status) {
	const w = VD.word(status) || 'none';
	return h('span', { class: 'badge b-' + w.replace(/[^a-z]/g, ''), title: status || '', text: status || '—' });
};

VD.setBadge = function (el, status) {
	const w = VD.word(status) || 'none';
	el.className = 'badge b-' + w.replace(/[^a-z]/g, '');
	el.title = status || '';
	el.textContent = status || '—';
};

/* The first 1-2 numbers "N/M" of a status line ("done 7/7 units in 0.2 s"). */
VD.unitsOf = function (status) {
	const m = /(\d+)\/(\d+)/.exec(status || '');
	return m ? [Number(m[1]), Number(m[2])] : null;
};

VD.taskHash = (t) => '#/tasks/' + VD.enc(t);
VD.versionHash = (t, id) => '#/tasks/' + VD.enc(t) + '/' + id;
VD.download = (t, id, what) => '/v1/tasks/' + VD.enc(t) + '/versions/' + id + '/' + what;

VD.mayCommit = function (task) {
	const s = VD.session;
	return s && (s.role === 'operator' || (s.role === 'submitter' && task && task.owner === s.name));
};

/* ---- fetch wrapper ---------------------------------------------------- */

VD.HttpError = class extends Error {
	constructor(status, msg, body) { super(msg); this.status = status; this.body = body; }
};

/* fetch with the session cookie and, on anything but GET, the CSRF header.
 * 401 sends the page to sign-in; other errors throw with the daemon's
 * JSON "error" as the message. opts.ok lists statuses not to throw on. */
VD.api = async function (path, opts) {
	opts = Object.assign({ method: 'GET' }, opts || {});
	const headers = Object.assign({}, opts.headers || {});
	if (opts.method !== 'GET' && opts.method !== 'HEAD' && VD.session && VD.session.csrf)
		headers['X-VDFS-CSRF'] = VD.session.csrf;
	let body = opts.body;
	if (opts.json !== undefined) {
		body = JSON.stringify(opts.json);
		headers['Content-Type'] = 'application/json';
	}
	const r = await fetch(path, { method: opts.method, headers, body, credentials: 'same-origin', cache: 'no-store' });
	if (r.status === 401) {
		location.href = '/signin';
		throw new VD.HttpError(401, 'signed out');
	}
	if (!r.ok && !(opts.ok || []).includes(r.status)) {
		let msg = r.status + ' ' + r.statusText, j = null;
		try {
			j = JSON.parse(await r.text());
			if (j && j.error)
				msg = j.error;
		} catch (e) { /* not JSON */ }
		throw new VD.HttpError(r.status, msg, j);
	}
	return r;
};
VD.json = async (path, opts) => (await VD.api(path, opts)).json();
VD.text = async (path, opts) => (await VD.api(path, opts)).text();

/* ---- messages -------------------------------------------------------- */

VD.error = function (e) {
	if (e && e.status === 401)
		return;
	const box = document.getElementById('error');
	box.textContent = e && e.message ? e.message : String(e);
	box.hidden = false;
	console.warn('vdfs:', e);
};
VD.clearError = function () {
	const box = document.getElementById('error');
	box.hidden = true;
	box.textContent = '';
};

/* ---- router ----------------------------------------------------------- */

let gen = 0;            // bumped on every navigation: late answers of an old view are dropped
let current = null;     // {name, ctrl}

function parseHash() {
	const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').filter((x) => x !== '');
	const dec = (s) => { try { return decodeURIComponent(s); } catch (e) { return s; } };
	if (parts[0] === 'tasks' && parts.length >= 3)
		return { view: 'version', args: { task: dec(parts[1]), id: dec(parts[2]) } };
	if (parts[0] === 'tasks' && parts.length === 2)
		return { view: 'task', args: { task: dec(parts[1]) } };
	if (parts[0] === 'executors')
		return { view: 'executors', args: {} };
	if (parts[0] === 'upload')
		return { view: 'upload', args: { task: parts[1] ? dec(parts[1]) : '' } };
	return { view: 'overview', args: {} };
}

async function navigate() {
	const my = ++gen;
	const { view, args } = parseHash();
	const body = document.body;
	body.dataset.view = view;
	body.dataset.ready = '0';
	VD.clearError();
	for (const a of document.querySelectorAll('nav a[data-nav]'))
		a.classList.toggle('active', a.dataset.nav === view ||
			(a.dataset.nav === 'overview' && (view === 'task' || view === 'version')));
	const root = document.getElementById('view');
	root.replaceChildren();
	const ctx = { alive: () => my === gen, root };
	const ctrl = VD.views[view](root, args, ctx);
	current = { name: view, ctrl, ctx };
	try {
		await ctrl.refresh(null);
		if (my !== gen)
			return;
		window.scrollTo(0, 0);
		body.dataset.ready = '1';
		window.vdfsReadyAt = performance.now();
	} catch (e) {
		if (my === gen) {
			VD.error(e);
			body.dataset.ready = '1'; // rendered: an error is what there is to show
		}
	}
}

/* ---- live updates ----------------------------------------------------
 * Every event means "something changed": the current view refetches its
 * data, at most once per 300 ms and never two rounds at once. */
const live = { pending: null, inflight: false, last: 0, timer: 0, es: null, fails: 0, poll: 0 };

function scheduleRefresh(kind) {
	if (live.pending === null)
		live.pending = new Set();
	live.pending.add(kind);
	pump();
}

function pump() {
	if (live.inflight || live.pending === null)
		return;
	// what the user asked for (a page, a filter) goes now; news wait their
	// gap, longer for a view whose fetch is dear for the daemon
	const urgent = live.pending.has('local');
	if (live.timer && !urgent)
		return;
	clearTimeout(live.timer);
	const gap = urgent ? 0 : (current && current.ctrl.minGap) || 300;
	const wait = Math.max(0, live.last + gap - performance.now());
	live.timer = setTimeout(async () => {
		live.timer = 0;
		const cur = current;
		if (!cur)
			return;
		if (document.body.dataset.ready !== '1') {
			// the view's first fetch may have begun before the news: look
			// again once it is rendered
			live.timer = setTimeout(() => { live.timer = 0; pump(); }, 300);
			return;
		}
		const kinds = live.pending;
		live.pending = null;
		live.inflight = true;
		live.last = performance.now();
		try {
			await cur.ctrl.refresh(kinds);
			if (cur.ctx.alive())
				document.body.dataset.ready = '1';
		} catch (e) {
			if (cur.ctx.alive())
				VD.error(e);
		} finally {
			live.inflight = false;
			pump();
		}
	}, wait);
}
VD.refreshSoon = () => scheduleRefresh('local');

const KINDS = ['hello', 'unit', 'run', 'version', 'task', 'executor', 'reset'];

function startEvents() {
	if (!window.EventSource)
		return startPolling();
	const es = live.es = new EventSource('/v1/events');
	let hellos = 0;
	for (const k of KINDS)
		es.addEventListener(k, () => {
			live.fails = 0;
			// the first hello is the connection itself; a later one is a
			// reconnect, after which what was missed is refetched
			if (k === 'hello' && hellos++ === 0)
				return;
			scheduleRefresh(k);
		});
	es.onerror = () => {
		// EventSource retries on its own; after repeated failures (or a
		// final one: the route answered an error) fall back to polling.
		if (++live.fails >= 3 || es.readyState === EventSource.CLOSED) {
			es.close();
			live.es = null;
			startPolling();
		}
	};
}

function startPolling() {
	if (live.poll)
		return;
	live.poll = setInterval(() => scheduleRefresh('poll'), 2000);
	// try the stream again later: the daemon may have been restarted
	setTimeout(() => {
		clearInterval(live.poll);
		live.poll = 0;
		live.fails = 0;
		startEvents();
	}, 60000);
}

/* ---- overview ---------------------------------------------------------- */

/* Progress of a task's latest version: [value, max, text]. */
function progressOf(t, st) {
	const active = (st && st.active) || [];
	const run = active.find((r) => r.data_id === t.latest) || active[0];
	if (run) {
		let text = run.done + '/' + run.units + ' units';
		if (run.eta_s !== undefined && run.eta_s > 0) {
			text += ' · ' + ((run.units - run.done) / run.eta_s).toFixed(1) + '/s';
			text += ' · ETA ' + (run.eta_s < 1 ? '< 1 s' : VD.dur(run.eta_s * 1000));
		} else if (run.combining) {
			text += ' · combining';
		} else if (!run.done) {
			text += run.running ? ' · ' + run.running + ' running' : ' · queued';
		}
		return [run.done, Math.max(1, run.units), text];
	}
	const s = t.latest_status || '', u = VD.unitsOf(s), w = VD.word(s);
	if (w === 'done')
		return u ? [u[1] || 1, u[1] || 1, u[1] + '/' + u[1] + ' units · done'] : [1, 1, s];
	if (u)
		return [u[0], Math.max(1, u[1]), u[0] + '/' + u[1] + ' units · ' + w];
	return [0, 1, s || (t.latest ? '' : 'no versions')];
}

VD.views.overview = function (root, args, ctx) {
	const tbody = h('tbody');
	const rows = new Map(); // task name -> {tr, cells}
	const online = h('span', { id: 'executors-online', text: '…' });
	const usage = h('span', { id: 'store-usage', text: '…' });
	const empty = h('p', { class: 'muted', hidden: true, text: 'No tasks yet. Make one on the upload page, or with mkdir in the mount.' });
	root.append(
		h('section', { class: 'cards' },
			h('div', { class: 'card' }, h('div', { class: 'label', text: 'executors online' }), online),
			h('div', { class: 'card wide' }, h('div', { class: 'label', text: 'store usage' }), usage)),
		h('h2', { text: 'Tasks' }),
		h('table', { id: 'tasks', class: 'grid' },
			h('thead', {}, h('tr', {}, ['task', 'owner', 'versions', 'latest', 'status', 'progress', 'updated']
				.map((x) => h('th', { text: x })))),
			tbody),
		empty);

	function row(name) {
		let r = rows.get(name);
		if (r)
			return r;
		const c = {
			link: h('a', {}), owner: h('td', { class: 'owner' }), versions: h('td', { class: 'num' }),
			latest: h('td', { class: 'latest' }), status: h('span', {}),
			bar: h('progress', { class: 'units', value: 0, max: 1 }),
			ptext: h('span', { class: 'progress-text' }), time: h('td', { class: 'time' }),
		};
		const tr = h('tr', { 'data-task': name },
			h('td', { class: 'name' }, c.link), c.owner, c.versions, c.latest,
			h('td', { class: 'status' }, c.status),
			h('td', { class: 'progress' }, c.bar, c.ptext), c.time);
		c.link.textContent = name;
		c.link.href = VD.taskHash(name);
		r = { tr, c, latest: undefined };
		rows.set(name, r);
		return r;
	}

	/* /v1/du walks every version (about a second for 10,000): it is not
	 * waited for, runs one at a time, and again only every 15 s when
	 * versions came or went. */
	let duBusy = false, duAt = -1e9, duStale = true;
	function loadDu() {
		if (duBusy || !duStale || performance.now() - duAt < 15000)
			return;
		duBusy = true;
		duStale = false;
		duAt = performance.now();
		VD.json('/v1/du').then((du) => {
			if (!ctx.alive())
				return;
			const s = du.store || {};
			usage.textContent = VD.human(s.logical) + ' logical · ' + VD.human(s.stored) + ' stored · ' +
				VD.human(s.pack_bytes) + ' on disk in ' + s.packs + ' pack' + (s.packs === 1 ? '' : 's') +
				(s.reclaimable ? ' · ' + VD.human(s.reclaimable) + ' reclaimable' : '');
		}).catch((e) => {
			if (ctx.alive() && usage.textContent === '…')
				usage.textContent = 'unknown (' + e.message + ')';
		}).finally(() => { duBusy = false; });
	}

	async function refresh(kinds) {
		if (!kinds || ['version', 'task', 'reset', 'poll', 'hello'].some((k) => kinds.has(k)))
			duStale = true;
		const [tasks, status] = await Promise.all([VD.json('/v1/tasks'), VD.json('/v1/status')]);
		if (!ctx.alive())
			return;
		loadDu(); // after the others: it holds the daemon's catalog a while
		const st = new Map((status.tasks || []).map((t) => [t.name, t]));
		const seen = new Set();
		let prev = null;
		for (const t of tasks.tasks || []) {
			seen.add(t.name);
			const r = row(t.name), c = r.c;
			c.owner.textContent = t.owner || '—';
			c.versions.textContent = t.versions !== undefined ? String(t.versions) : '';
			if (r.latest !== t.latest) {
				r.latest = t.latest;
				c.latest.replaceChildren();
				if (t.latest)
					c.latest.append(h('a', { href: VD.versionHash(t.name, t.latest), text: t.latest_name || t.latest.slice(0, 12) }),
						' ', VD.id(t.latest));
			}
			const [v, m, text] = progressOf(t, st.get(t.name));
			VD.setBadge(c.status, t.latest_status || (t.latest ? '' : 'no versions'));
			c.bar.max = m;
			c.bar.value = v;
			c.ptext.textContent = text;
			c.time.textContent = VD.time(t.latest_time);
			// keep the server's order, moving a row only when it is out of place
			const want = prev ? prev.nextSibling : tbody.firstChild;
			if (want !== r.tr)
				tbody.insertBefore(r.tr, want);
			prev = r.tr;
		}
		for (const [name, r] of rows)
			if (!seen.has(name)) {
				r.tr.remove();
				rows.delete(name);
			}
		empty.hidden = rows.size > 0;
		online.textContent = String((status.executors || []).filter((x) => x.state === 'busy' || x.state === 'idle').length);
	}
	return { refresh };
};

/* ---- start ------------------------------------------------------------- */

async function start() {
	try {
		VD.session = await VD.json('/v1/session');
	} catch (e) {
		if (e.status !== 401)
			document.getElementById('error').textContent = 'cannot reach the daemon: ' + e.message;
		return;
	}
	const s = VD.session;
	document.getElementById('whoami').textContent = s.name + ' (' + s.role + ')';
	document.getElementById('signout').addEventListener('click', async () => {
		try {
			await VD.api('/v1/session', { method: 'DELETE' });
		} catch (e) { /* signed out either way */ }
		location.href = '/signin';
	});
	window.addEventListener('hashchange', navigate);
	navigate();
	startEvents();
}

document.addEventListener('DOMContentLoaded', start);
