/* version.js - one version of a task: status, meta.json, a preview of
 * result.csv, downloads (a tree's files one by one), its lineage drawn as
 * SVG, and a diff against another version (summary and line diff). */
'use strict';

(() => {
	const { h } = VD;
	const PREVIEW_BYTES = 262144, PREVIEW_LINES = 20;

	/* The first n lines of CSV text as rows of fields: RFC 4180 quoting
	 * ("" inside quotes is one "), as Python's csv module reads them. */
	function csvRows(text, n) {
		let cut = 0;
		for (let i = 0; i < n && cut >= 0; i++) {
			const j = text.indexOf('\n', cut);
			cut = j < 0 ? -1 : j + 1;
		}
		if (cut > 0)
			text = text.slice(0, cut);
		const rows = [];
		let row = [], f = '', q = false, any = false;
		for (let i = 0; i < text.length; i++) {
			const ch = text[i];
			if (q) {
				if (ch === '"' && text[i + 1] === '"') { f += '"'; i++; }
				else if (ch === '"') q = false;
				else f += ch;
			} else if (ch === '"' && f === '') { q = true; any = true; }
			else if (ch === ',') { row.push(f); f = ''; any = true; }
			else if (ch === '\n' || ch === '\r') {
				if (ch === '\r' && text[i + 1] === '\n')
					i++;
				if (any || f !== '')
					row.push(f);
				rows.push(row);
				row = []; f = ''; any = false;
			} else { f += ch; }
		}
		if (any || f !== '') {
			row.push(f);
			rows.push(row);
		}
		return rows.slice(0, n);
	}
	VD.csvRows = csvRows;

	/* ---- lineage ---------------------------------------------------------
	 * Layered left to right: a node's column is the longest path to it from
	 * a source; within a column nodes are ordered by their parents' rows. */
	const NW = 190, NH = 46, GX = 90, GY = 18, PAD = 12, TOP = 42; // TOP: room for loops and labels
	const svg = (tag, attrs, ...kids) => h('svg:' + tag, attrs, ...kids);
	const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

	function layout(nodes, edges) {
		const ids = nodes.map((n) => n.id), ins = new Map(ids.map((i) => [i, []])), outs = new Map(ids.map((i) => [i, []]));
		for (const e of edges)  // a self-loop (a result that is also a version) is no layer
			if (e.from !== e.to && ins.has(e.to) && outs.has(e.from)) {
				ins.get(e.to).push(e.from);
				outs.get(e.from).push(e.to);
			}
		const rank = new Map(), indeg = new Map(ids.map((i) => [i, ins.get(i).length]));
		const queue = ids.filter((i) => !indeg.get(i));
		for (const i of queue)
			rank.set(i, 0);
		for (;;) {
			while (queue.length) {  // Kahn's order: every parent is ranked before its child
				const i = queue.shift();
				for (const o of outs.get(i)) {
					rank.set(o, Math.max(rank.get(o) || 0, rank.get(i) + 1));
					indeg.set(o, indeg.get(o) - 1);
					if (!indeg.get(o))
						queue.push(o);
				}
			}
			// a cycle (there should be none): break it at one of its nodes
			const left = ids.find((i) => indeg.get(i) > 0);
			if (left === undefined)
				break;
			indeg.set(left, 0);
			rank.set(left, rank.get(left) || 0);
			queue.push(left);
		}
		const cols = [];
		for (const i of ids)
			(cols[rank.get(i)] = cols[rank.get(i)] || []).push(i);
		const row = new Map();
		cols.forEach((col, c) => {
			if (c > 0) {
				const bary = (i) => {
					const p = ins.get(i).filter((x) => row.has(x));
					return p.length ? p.reduce((a, x) => a + row.get(x), 0) / p.length : 1e9;
				};
				col.sort((a, b) => bary(a) - bary(b));
			}
			col.forEach((i, r) => row.set(i, r));
		});
		const tallest = Math.max(...cols.map((c) => c.length));
		const pos = new Map();
		cols.forEach((col, c) => {
			const off = (tallest - col.length) * (NH + GY) / 2; // centre short columns
			col.forEach((i, r) => pos.set(i, { x: PAD + c * (NW + GX), y: TOP + off + r * (NH + GY) }));
		});
		return { pos, w: 2 * PAD + cols.length * NW + (cols.length - 1) * GX, h: TOP + PAD + tallest * NH + (tallest - 1) * GY };
	}

	function drawLineage(box, lin, task) {
		const nodes = lin.nodes || [], edges = lin.edges || [];
		const { pos, w, h: ht } = layout(nodes, edges);
		const s = svg('svg', { width: w, height: ht, viewBox: '0 0 ' + w + ' ' + ht, role: 'img',
			'aria-label': 'lineage of ' + lin.root });
		s.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
			markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
		for (const e of edges) {
			const a = pos.get(e.from), b = pos.get(e.to);
			if (!a || !b)
				continue;
			let x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2, mx = (x1 + x2) / 2;
			let d = 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx + ',' + y2 + ' ' + x2 + ',' + y2;
			if (a === b) {  // the same ID twice (a result that is this version): a loop over the node
				x1 = a.x + NW - 70; x2 = a.x + NW - 20; y1 = y2 = a.y;
				mx = (x1 + x2) / 2;
				d = 'M' + x1 + ',' + y1 + ' C' + x1 + ',' + (y1 - 30) + ' ' + x2 + ',' + (y1 - 30) + ' ' + x2 + ',' + y2;
				y1 = y2 = a.y - 24;
			}
			const label = e.code_id ? e.code_id.slice(0, 8) : e.kind;
			const g = svg('g', { class: 'edge ' + e.kind, 'data-from': e.from, 'data-to': e.to, 'data-kind': e.kind,
				'data-code': e.code_id || '' },
			svg('title', { text: e.kind + (e.code_id ? ' by code ' + e.code_id : '') + (e.path ? ' (' + e.path + ')' : '') }),
			svg('path', { d, 'marker-end': 'url(#arrow)' }),
			svg('text', { x: mx, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle', text: label + (e.path ? ' ' + cut(e.path, 14) : '') }));
			s.append(g);
		}
		for (const n of nodes) {
			const p = pos.get(n.id);
			const cls = 'node ' + n.kind + (n.id === lin.root ? ' root' : '');
			const g = svg('g', { class: cls, 'data-id': n.id, 'data-kind': n.kind, transform: 'translate(' + p.x + ',' + p.y + ')' },
				svg('title', { text: n.kind + ' ' + n.id + (n.task ? '\ntask ' + n.task : '') + (n.name ? '\n' + n.name : '') +
					(n.deleted ? '\ndeleted ' + VD.time(n.deleted) : '') }),
				svg('rect', { width: NW, height: NH, rx: 7, ry: 7 }),
				svg('text', { x: 9, y: 18, class: 'k', text: n.kind + ' ' + n.id.slice(0, 12) }),
				svg('text', { x: 9, y: 36, text: cut((n.task || '') + (n.name ? ' / ' + n.name : ''), 28) }));
			// a result opens the version whose run made it
			const from = n.kind === 'result' && edges.find((e) => e.kind === 'run' && e.to === n.id);
			const src = from && nodes.find((m) => m.id === from.from && m.kind === 'version');
			const target = n.kind === 'version' ? n : src;
			if (target && target.task) {
				g.classList.add('link');
				g.setAttribute('tabindex', '0');
				g.setAttribute('role', 'link');
				const go = () => { location.hash = VD.versionHash(target.task, target.id); };
				g.addEventListener('click', go);
				g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
			}
			s.append(g);
		}
		box.replaceChildren(s);
		if (lin.truncated)
			box.append(h('p', { class: 'muted', text: 'the lineage is larger than shown (truncated by the daemon)' }));
	}

	/* ---- diff ------------------------------------------------------------ */

	function diffSummary(d) {
		const t = h('table', { class: 'grid narrow' },
			h('thead', {}, h('tr', {}, ['', 'shared', 'changed', 'added', 'removed'].map((x) => h('th', { text: x })))));
		const tb = h('tbody');
		for (const k of ['files', 'chunks', 'bytes', 'units']) {
			const o = d[k] || {}, f = k === 'bytes' ? VD.human : (x) => (x === undefined ? '' : String(x));
			tb.append(h('tr', {}, h('th', { text: k }), h('td', { class: 'num', text: f(o.shared) }),
				h('td', { class: 'num', text: f(o.changed) }), h('td', { class: 'num', text: f(o.added) }),
				h('td', { class: 'num', text: f(o.removed) })));
		}
		t.append(tb);
		return t;
	}

	function diffLines(box, text) {
		const frag = document.createDocumentFragment();
		const lines = text.split('\n');
		if (lines.length && lines[lines.length - 1] === '')
			lines.pop();
		for (const l of lines) {
			let c = 'ctx';
			if (l.startsWith('+++ ') || l.startsWith('--- ') || l.startsWith('diff ') || l.startsWith('Binary '))
				c = 'hunk file';
			else if (l.startsWith('@@'))
				c = 'hunk';
			else if (l[0] === '+')
				c = 'add';
			else if (l[0] === '-')
				c = 'del';
			frag.append(h('div', { class: c, text: l || ' ' }));
		}
		box.replaceChildren(frag);
	}

	/* ---- the view --------------------------------------------------------- */

	VD.views.version = function (root, args, ctx) {
		const task = args.task, id = args.id;
		const base = VD.download(task, id, '');
		const st = { status: null, preview: null, lineage: null, tree: null, meta: null };

		const status = h('span', { id: 'version-status', class: 'badge' });
		const facts = h('dl', { class: 'facts' });
		const meta = h('pre', { id: 'meta', class: 'code' });
		const runlog = h('pre', { class: 'code log' });
		const preview = h('table', { id: 'preview', class: 'grid csv' }, h('tbody'));
		const previewNote = h('p', { class: 'muted' });
		const dlInput = h('a', { id: 'download-input', class: 'button', href: base + 'input', download: '', text: 'download input' });
		const dlResult = h('a', { id: 'download-result', class: 'button', href: base + 'result.csv', download: '', text: 'download result.csv' });
		const files = h('div', { class: 'files' });
		const lineage = h('div', { id: 'lineage', class: 'lineage' });
		const against = h('select', { id: 'diff-against' }, h('option', { value: '', text: '(another version of ' + task + ')' }));
		const diffId = h('input', { id: 'diff-id', type: 'text', placeholder: 'or any data ID (prefix)', size: 34, spellcheck: 'false' });
		const diffPath = h('select', { id: 'diff-path', hidden: true }, h('option', { value: '', text: 'every changed file' }));
		const diffResult = h('input', { id: 'diff-result', type: 'checkbox' });
		const diffGo = h('button', { id: 'diff-go', type: 'button', text: 'diff' });
		const diffMsg = h('p', { class: 'muted' });
		const summary = h('div', { id: 'diff-summary' });
		const lines = h('div', { id: 'diff-lines', class: 'difflines' });

		root.append(
			h('div', { class: 'titlebar' },
				h('h1', {}, h('a', { href: VD.taskHash(task), text: task }), ' / ', h('code', { id: 'version-id', text: id })),
				status),
			h('div', { class: 'vtop' },
				h('div', {}, facts, h('div', { class: 'toolbar' }, dlInput, dlResult)),
				h('section', { class: 'scrollx' }, h('h2', { text: 'lineage' }), lineage)),
			files,
			h('section', {}, h('h2', { text: 'result preview' }), previewNote, h('div', { class: 'scrollx' }, preview)),
			h('section', {}, h('h2', { text: 'diff' }),
				h('p', { class: 'muted', text: 'how this version differs from another (that one is "a", this one "b")' }),
				h('div', { class: 'toolbar' }, against, diffId, diffPath,
					h('label', {}, diffResult, ' results'), diffGo),
				diffMsg, summary, lines),
			h('section', {}, h('h2', { text: 'run log' }), runlog),
			h('section', {}, h('h2', { text: 'meta.json' }), meta));

		function fact(k, v) {
			facts.append(h('dt', { text: k }), h('dd', {}, v));
		}

		async function loadInfo() {
			const info = await VD.json('/v1/versions/' + id);
			if (!ctx.alive())
				return;
			const v = (info.versions || []).find((x) => x.task === task) || (info.versions || [])[0] || {};
			const man = info.manifest || {};
			facts.replaceChildren();
			fact('name', v.name || '');
			fact('kind', man.kind || v.kind || '');
			fact('size', VD.human(v.size) + (v.files > 1 ? ' in ' + v.files + ' files' : ''));
			fact('stored', VD.human(v.stored));
			fact('sealed', VD.time(v.time));
			fact('code', VD.id(v.code_id));
			if (man.kind === 'tree' && !st.tree) {
				st.tree = man.files || [];
				dlInput.href = '/v1/archive?ids=' + id + '&what=input&task=' + VD.enc(task);
				dlInput.textContent = 'download input as zip';
				const list = h('ul', { class: 'filelist' });
				let n = 0;
				for (const f of st.tree) {
					if (f.type && f.type !== 'file') {
						list.append(h('li', {}, h('span', { text: f.path }), h('span', { class: 'muted',
							text: ' ' + f.type + (f.target ? ' → ' + f.target : '') })));
						continue;
					}
					if (++n <= 500)
						list.append(h('li', {}, h('a', { href: base + 'input/' + f.path.split('/').map(VD.enc).join('/'),
							download: '', text: f.path }), h('span', { class: 'muted', text: ' ' + VD.human(f.size) })));
					diffPath.append(h('option', { value: f.path, text: f.path }));
				}
				if (n > 500)
					list.append(h('li', { class: 'muted', text: '… and ' + (n - 500) + ' more files' }));
				files.replaceChildren(h('h2', { text: 'files' }), list);
				diffPath.hidden = false;
			}
		}

		async function loadStatus() {
			const [s, m, l] = await Promise.all([VD.text(base + 'status'), VD.text(base + 'meta.json'), VD.text(base + 'log')]);
			if (!ctx.alive())
				return false;
			const changed = s !== st.status;
			st.status = s;
			VD.setBadge(status, s.trim());
			if (m !== st.meta) {
				st.meta = m;
				meta.textContent = m;
			}
			if (l !== runlog.textContent)
				runlog.textContent = l;
			return changed;
		}

		async function loadPreview() {
			const tb = preview.tBodies[0];
			if (VD.word(st.status) !== 'done') {  // result.csv is there once the newest run is done
				tb.replaceChildren();
				previewNote.textContent = 'no result yet';
				dlResult.setAttribute('aria-disabled', 'true');
				return;
			}
			const r = await VD.api(base + 'result.csv', { headers: { Range: 'bytes=0-' + (PREVIEW_BYTES - 1) }, ok: [404, 416] });
			if (!ctx.alive())
				return;
			if (r.status === 404 || r.status === 416) {
				tb.replaceChildren();
				previewNote.textContent = r.status === 416 ? 'the result is empty' : 'no result yet';
				dlResult.setAttribute('aria-disabled', 'true');
				return;
			}
			dlResult.removeAttribute('aria-disabled');
			const text = await r.text();
			const frag = document.createDocumentFragment();
			for (const row of csvRows(text, PREVIEW_LINES))
				frag.append(h('tr', {}, row.map((f) => h('td', { text: f }))));
			tb.replaceChildren(frag);
			const total = /\/(\d+)$/.exec(r.headers.get('Content-Range') || '');
			previewNote.textContent = 'the first ' + tb.rows.length + ' lines' +
				(total ? ' of ' + VD.human(Number(total[1])) : '');
		}

		async function loadLineage() {
			const lin = await VD.json('/v1/lineage/' + id);
			if (!ctx.alive())
				return;
			const key = JSON.stringify(lin);
			if (key !== st.lineage) {  // redraw only when it changed
				st.lineage = key;
				drawLineage(lineage, lin, task);
			}
		}

		async function loadOthers() {
			const j = await VD.json('/v1/tasks/' + VD.enc(task) + '/versions?limit=200');
			if (!ctx.alive())
				return;
			for (const v of j.versions || [])
				if (v.data_id !== id)
					against.append(h('option', { value: v.data_id,
						text: (v.name || '') + ' · ' + v.data_id.slice(0, 12) + ' · ' + VD.time(v.time) }));
		}

		async function runDiff() {
			summary.replaceChildren();
			lines.replaceChildren();
			diffMsg.textContent = 'comparing…';
			try {
				let other = diffId.value.trim().toLowerCase() || against.value;
				if (!other) {
					diffMsg.textContent = 'pick a version or type a data ID';
					return;
				}
				if (!/^[0-9a-f]{32}$/.test(other))
					other = (await VD.json('/v1/resolve/' + VD.enc(other))).id;
				const d = await VD.json('/v1/diff/' + other + '/' + id);
				summary.replaceChildren(diffSummary(d));
				const q = new URLSearchParams();
				if (diffPath.value && !diffResult.checked)
					q.set('path', diffPath.value);
				if (diffResult.checked)
					q.set('result', '1');
				const r = await VD.api('/v1/diff/' + other + '/' + id + '/lines' + (q.toString() ? '?' + q : ''), { ok: [404] });
				if (r.status === 404) {
					let why = '';
					try { why = (await r.json()).error || ''; } catch (e) { /* not JSON */ }
					diffMsg.textContent = 'no line diff: ' + (why || 'this daemon has no line diff route');
					return;
				}
				const text = await r.text();
				diffLines(lines, text);
				diffMsg.textContent = (text ? '' : 'no line differs') +
					(r.headers.get('X-VDFS-Truncated') === '1' ? ' truncated: the diff is longer than shown' : '');
			} catch (e) {
				diffMsg.textContent = e.message;
			}
		}
		diffGo.addEventListener('click', runDiff);

		async function refresh(kinds) {
			if (!kinds) {
				await Promise.all([loadInfo(), loadStatus().then(loadPreview), loadLineage(), loadOthers()]);
				return;
			}
			// live: the result appears and the lineage grows as runs end
			const changed = await loadStatus();
			const jobs = [loadLineage()];
			if (changed || !preview.tBodies[0].rows.length)
				jobs.push(loadPreview());
			await Promise.all(jobs);
		}
		return { refresh };
	};
})();
