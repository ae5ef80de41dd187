/* executors.js - the executors table from /v1/status; operators get a
 * revoke button per executor. */
'use strict';

(() => {
	const { h } = VD;
	const COLS = [['name', 'name'], ['level', 'level'], ['slots', 'slots'], ['state', 'state'], ['running', 'running'],
		['done', 'units done'], ['failed', 'failed'], ['infra', 'infra failed'], ['flagged', 'flagged'],
		['seen', 'last seen'], ['quarantined', 'quarantined']];

	VD.views.executors = function (root, args, ctx) {
		const operator = VD.session.role === 'operator';
		const tbody = h('tbody'), rows = new Map();
		const summary = h('p', { class: 'muted' });
		root.append(h('h1', { text: 'Executors' }), summary,
			h('table', { id: 'executor-list', class: 'grid' },
				h('thead', {}, h('tr', {}, COLS.map(([, t]) => h('th', { text: t })), operator ? h('th', {}) : null)),
				tbody));

		async function revoke(name, btn) {
			if (!confirm('Revoke executor ' + name + '? Its token stops working and the units it holds go back to the queue.'))
				return;
			btn.disabled = true;
			try {
				await VD.json('/v1/executors/' + VD.enc(name), { method: 'DELETE' });
				VD.refreshSoon();
			} catch (e) {
				VD.error(e);
				btn.disabled = false;
			}
		}

		function row(x) {
			let r = rows.get(x.name);
			if (r)
				return r;
			const c = {};
			const tr = h('tr', { 'data-executor': x.name });
			for (const [k] of COLS) {
				c[k] = h('td', { class: k + (k === 'name' || k === 'state' ? '' : ' num') });
				tr.append(c[k]);
			}
			c.name.textContent = x.name;
			c.state.append(c.badge = h('span', {}));
			if (operator) {
				c.act = h('td', { class: 'act' });
				tr.append(c.act);
			}
			r = { tr, c };
			rows.set(x.name, r);
			return r;
		}

		async function refresh() {
			const s = await VD.json('/v1/status');
			if (!ctx.alive())
				return;
			const xs = (s.executors || []).slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
			const seen = new Set();
			let on = 0, prev = null;
			for (const x of xs) {
				seen.add(x.name);
				const { tr, c } = row(x);
				c.level.textContent = String(x.level);
				c.slots.textContent = String(x.slots);
				VD.setBadge(c.badge, x.state);
				c.running.textContent = String(x.running || 0);
				c.done.textContent = String(x.units_done || 0);
				c.failed.textContent = String(x.units_failed || 0);
				c.infra.textContent = String(x.infra_failed || 0);
				c.flagged.textContent = String(x.flagged || 0);
				c.seen.textContent = x.last_seen_ms === undefined ? '' : VD.dur(x.last_seen_ms) + ' ago';
				c.quarantined.textContent = x.quarantined ? 'yes' : 'no';
				c.quarantined.classList.toggle('warn', !!x.quarantined);
				if (x.state === 'busy' || x.state === 'idle')
					on++;
				if (operator) {
					const has = c.act.querySelector('button.revoke');
					if (x.state !== 'revoked' && !has) {
						const b = h('button', { type: 'button', class: 'revoke danger', text: 'revoke' });
						b.addEventListener('click', () => revoke(x.name, b));
						c.act.append(b);
					} else if (x.state === 'revoked' && has) {
						has.remove();
					}
				}
				// name order; a row moves only when out of place (moving blurs its button)
				const want = prev ? prev.nextSibling : tbody.firstChild;
				if (want !== tr)
					tbody.insertBefore(tr, want);
				prev = tr;
			}
			for (const [n, r] of rows)
				if (!seen.has(n)) {
					r.tr.remove();
					rows.delete(n);
				}
			summary.textContent = xs.length ? on + ' of ' + xs.length + ' online (busy or idle)' : 'No executor has registered yet.';
		}
		return { refresh };
	};
})();
