/* task.js - one task: its versions (paginated by the server, 100 a page,
 * filtered by status word and text), function, config and the newest
 * version's run log; ticked versions download as one zip. */
'use strict';

(() => {
	const { h } = VD;
	const PAGE = 100;
	const FN_MAX = 65536; // the function is shown up to its first 64 KiB

	/* The first `max` bytes of a text route, decoded (binary shows as
	 * replacement characters, never as markup). */
	async function headText(path, max) {
		const r = await VD.api(path, { headers: { Range: 'bytes=0-' + (max - 1) }, ok: [404, 416] });
		if (r.status === 404 || r.status === 416)
			return null;
		const b = new Uint8Array(await r.arrayBuffer());
		const t = new TextDecoder().decode(b.subarray(0, max));
		return b.length > max ? t + '\n… (first ' + VD.human(max) + ' shown)' : t;
	}
	VD.headText = headText;

	VD.views.task = function (root, args, ctx) {
		const task = args.task, tp = '/v1/tasks/' + VD.enc(task);
		const st = { offset: 0, state: '', q: '', picked: new Set(), rows: new Map(), latest: undefined,
			fn: null, logFor: undefined };

		const owner = h('span', { class: 'muted' });
		const actions = h('span', { class: 'actions' });
		const note = h('span', { class: 'note' });
		const filterState = h('select', { id: 'filter-state' },
			['', 'done', 'running', 'queued', 'failed'].map((w) => h('option', { value: w, text: w || 'all' })));
		const filterText = h('input', { id: 'filter-text', type: 'search', placeholder: 'name or ID prefix', size: 24 });
		const prev = h('button', { id: 'page-prev', type: 'button', text: '‹ newer' });
		const next = h('button', { id: 'page-next', type: 'button', text: 'older ›' });
		const info = h('span', { id: 'page-info' });
		const zip = h('a', { id: 'zip', class: 'button', 'aria-disabled': 'true', text: 'download results as zip' });
		const clear = h('button', { type: 'button', class: 'link', hidden: true, text: 'clear ticks' });
		const tbody = h('tbody');
		const fnPre = h('pre', { id: 'function', class: 'code' });
		const cfgPre = h('pre', { id: 'config', class: 'code' });
		const logPre = h('pre', { id: 'runlog', class: 'code log' });
		const logHead = h('span', { class: 'muted' });

		root.append(
			h('div', { class: 'titlebar' },
				h('h1', {}, h('span', { class: 'muted', text: 'task ' }), h('span', { id: 'task-name', text: task })),
				owner, actions, note),
			h('div', { class: 'toolbar' }, filterState, filterText, prev, info, next,
				h('span', { class: 'spacer' }), clear, zip),
			h('table', { id: 'versions', class: 'grid' },
				h('thead', {}, h('tr', {}, ['', 'name', 'data ID', 'time', 'code', 'submitted by', 'duration', 'size', 'status']
					.map((x) => h('th', { text: x })))),
				tbody),
			h('div', { class: 'cols' },
				h('section', {}, h('h2', { text: 'function' }), fnPre),
				h('section', {}, h('h2', { text: 'config' }), cfgPre)),
			h('section', {}, h('h2', {}, 'run log ', logHead), logPre));

		function updateZip() {
			const ids = [...st.picked];
			clear.hidden = !ids.length;
			if (!ids.length) {
				zip.removeAttribute('href');
				zip.removeAttribute('download');
				zip.setAttribute('aria-disabled', 'true');
				zip.textContent = 'download results as zip';
				return;
			}
			zip.href = '/v1/archive?ids=' + ids.join(',') + '&what=result&task=' + VD.enc(task);
			zip.setAttribute('download', '');
			zip.removeAttribute('aria-disabled');
			zip.textContent = 'download results as zip (' + ids.length + ')';
		}

		function makeRow(v) {
			const pick = h('input', { type: 'checkbox', class: 'pick', value: v.data_id, 'aria-label': 'tick ' + v.data_id });
			pick.addEventListener('change', () => {
				if (pick.checked)
					st.picked.add(v.data_id);
				else
					st.picked.delete(v.data_id);
				updateZip();
			});
			const c = {
				pick, name: h('a', { href: VD.versionHash(task, v.data_id) }), time: h('td', { class: 'time' }),
				code: h('td', { class: 'code' }), submitter: h('td', { class: 'submitter' }),
				duration: h('td', { class: 'duration num' }), size: h('td', { class: 'size num' }),
				status: h('span', {}),
			};
			const tr = h('tr', { 'data-id': v.data_id },
				h('td', { class: 'pickcell' }, pick), h('td', { class: 'name' }, c.name),
				h('td', { class: 'id' }, VD.id(v.data_id)), c.time, c.code, c.submitter, c.duration, c.size,
				h('td', { class: 'status' }, c.status));
			return { tr, c, key: '' };
		}

		function fill(r, v) {
			// rewrite a row only when what it shows changed
			const key = [v.name, v.time, v.code_id, v.submitted_by, v.duration_ms, v.size, v.stored, v.status].join('\x00');
			r.c.pick.checked = st.picked.has(v.data_id);
			if (r.key === key)
				return;
			r.key = key;
			const c = r.c;
			c.name.textContent = v.name || v.data_id.slice(0, 12);
			c.time.textContent = VD.time(v.time);
			c.code.replaceChildren(VD.id(v.code_id, 8));
			c.submitter.textContent = v.submitted_by || '';
			c.duration.textContent = VD.dur(v.duration_ms);
			c.size.textContent = VD.human(v.size);
			c.size.title = v.stored !== undefined ? VD.human(v.stored) + ' new in the store' : '';
			VD.setBadge(c.status, v.status);
		}

		async function loadVersions() {
			const q = new URLSearchParams({ offset: st.offset, limit: PAGE });
			if (st.state)
				q.set('state', st.state);
			if (st.q)
				q.set('q', st.q);
			const j = await VD.json(tp + '/versions?' + q);
			if (!ctx.alive())
				return null;
			// past the end (versions went away, or a narrower filter): last page
			if (!j.versions.length && j.total > 0 && st.offset > 0) {
				st.offset = Math.floor((j.total - 1) / PAGE) * PAGE;
				return loadVersions();
			}
			const keep = new Map(), trs = [];
			for (const v of j.versions) {
				const r = st.rows.get(v.data_id) || makeRow(v);
				fill(r, v);
				keep.set(v.data_id, r);
				trs.push(r.tr);
			}
			st.rows = keep;
			// the same rows in the same order (most live refreshes): leave
			// them in place, so that focus and selection stay
			const same = trs.length === tbody.children.length && trs.every((tr, i) => tbody.children[i] === tr);
			if (!same) {
				const frag = document.createDocumentFragment();
				frag.append(...trs);
				tbody.replaceChildren(frag);
			}
			if (!j.versions.length)
				tbody.append(h('tr', {}, h('td', { colspan: 9, class: 'muted', text:
					st.state || st.q ? 'no version matches' : 'no versions yet' })));
			const total = j.total !== undefined ? j.total : j.versions.length;
			info.textContent = total ? (st.offset + 1) + '–' + (st.offset + j.versions.length) + ' of ' + total : '0 of 0';
			prev.disabled = st.offset === 0;
			next.disabled = st.offset + j.versions.length >= total;
			st.latest = j.latest;
			return j;
		}

		async function loadLog() {
			if (!st.latest) {
				logHead.textContent = '';
				logPre.textContent = 'no versions yet';
				return;
			}
			const t = await VD.text(VD.download(task, st.latest, 'log'));
			if (!ctx.alive())
				return;
			logHead.replaceChildren('of the newest version ', h('a', { href: VD.versionHash(task, st.latest) }, VD.id(st.latest)));
			if (logPre.textContent !== t) {
				const atEnd = logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 4;
				logPre.textContent = t || '(empty)';
				if (atEnd)
					logPre.scrollTop = logPre.scrollHeight;
			}
		}

		async function loadTaskFiles() {
			const [fn, cfg] = await Promise.all([headText(tp + '/function', FN_MAX), VD.text(tp + '/config')]);
			if (!ctx.alive())
				return;
			fnPre.textContent = fn ? fn : '(no function yet)';
			cfgPre.textContent = cfg ? cfg : '(empty: the defaults)';
		}

		async function loadOwner() {
			const t = ((await VD.json('/v1/tasks')).tasks || []).find((x) => x.name === task);
			if (!ctx.alive())
				return;
			if (!t)
				throw new Error('no task ' + task);
			owner.textContent = t.owner ? 'owned by ' + t.owner : 'no owner';
			if (!actions.firstChild) {
				const s = VD.session;
				if (s.role === 'operator' || (s.role === 'submitter' && t.owner === s.name)) {
					const rerun = h('button', { id: 'rerun', type: 'button', text: 'rerun latest',
						title: 'run the newest version again with the current code and config' });
					rerun.addEventListener('click', async () => {
						rerun.disabled = true;
						try {
							const r = await VD.json(tp + '/rerun', { method: 'POST', json: {} });
							note.textContent = 'rerun of ' + String(r.data_id || '').slice(0, 12) + ' queued';
							VD.refreshSoon();
						} catch (e) {
							VD.error(e);
						} finally {
							rerun.disabled = false;
						}
					});
					actions.append(rerun, h('a', { class: 'button', href: '#/upload/' + VD.enc(task), text: 'upload into it' }));
				}
			}
		}

		filterState.addEventListener('change', () => {
			st.state = filterState.value;
			st.offset = 0;
			VD.refreshSoon();
		});
		let deb = 0;
		filterText.addEventListener('input', () => {
			clearTimeout(deb);
			deb = setTimeout(() => {
				st.q = filterText.value.trim();
				st.offset = 0;
				VD.refreshSoon();
			}, 250);
		});
		prev.addEventListener('click', () => { st.offset = Math.max(0, st.offset - PAGE); VD.refreshSoon(); });
		next.addEventListener('click', () => { st.offset += PAGE; VD.refreshSoon(); });
		clear.addEventListener('click', () => {
			st.picked.clear();
			for (const r of st.rows.values())
				r.c.pick.checked = false;
			updateZip();
		});
		updateZip();

		async function refresh(kinds) {
			const all = !kinds || kinds.has('reset') || kinds.has('poll') || kinds.has('hello');
			const jobs = [loadVersions().then((j) => j && loadLog())];
			if (all)
				jobs.push(loadOwner());
			if (all || kinds.has('task'))
				jobs.push(loadTaskFiles());
			await Promise.all(jobs);
		}
		// a page of a big task costs the daemon a sort of all its versions
		// (about 0.4 s at 10,000): live refreshes at most once a second
		return { refresh, minGap: 1000 };
	};
})();
