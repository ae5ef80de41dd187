/* upload.js - the upload page: the daemon's chunker ported to JS, SHA-256
 * fingerprints, the chunk-level upload protocol (docs/upload.md), and the
 * create-task form. */
'use strict';

/* ---- the chunker: a byte-exact port of vd_chunker_cut (daemon/chunker.c) ----
 * A page upload must cut where the C chunker cuts, else a later `vdfs put`
 * of the same file would find none of its chunks. */
const VDChunker = (() => {
	// Gear table from splitmix64, seed "vdfsgear": BigInt once, then two
	// Uint32 halves so that the hot loop stays in 32-bit integer arithmetic.
	const GHI = new Uint32Array(256), GLO = new Uint32Array(256);
	(() => {
		const M = (1n << 64n) - 1n;
		let st = 0x7664667367656172n;
		for (let i = 0; i < 256; i++) {
			st = (st + 0x9e3779b97f4a7c15n) & M;
			let z = st;
			z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
			z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
			z ^= z >> 31n;
			GHI[i] = Number(z >> 32n);
			GLO[i] = Number(z & 0xffffffffn);
		}
	})();

	// top_mask(bits) as [hi, lo] 32-bit halves.
	function topMask(bits) {
		bits = Math.min(63, Math.max(1, bits));
		const hi = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
		const lo = bits <= 32 ? 0 : (0xffffffff << (64 - bits)) >>> 0;
		return [hi, lo];
	}

	// First i in [from, to) where h = (h << 1) + gear[p[i]] (mod 2^64) has
	// no bit of the mask set; strict mask before avg, loose after; else to.
	function gearScan(p, base, from, avg, to, ms, ml) {
		let hi = 0, lo = 0, i = from;
		const mid = avg < to ? avg : to;
		for (let pass = 0; pass < 2; pass++) {
			const end = pass ? to : mid, mh = pass ? ml[0] : ms[0], mlo = pass ? ml[1] : ms[1];
			for (; i < end; i++) {
				const b = p[base + i];
				const l2 = (lo << 1 >>> 0) + GLO[b]; // < 2^33: the carry is bit 32
				hi = ((hi << 1 | lo >>> 31) + GHI[b] + (l2 > 0xffffffff ? 1 : 0)) >>> 0;
				lo = l2 >>> 0;
				if ((hi & mh) === 0 && (lo & mlo) === 0)
					return i;
			}
		}
		return to;
	}

	function log2(v) {
		let r = 0;
		while (v > 1) { v = Math.floor(v / 2); r++; }
		return r;
	}

	/* The chunk starting at p[base] with n bytes there: > 0 its length,
	 * 0 more bytes needed (only without eof), -1 a record over hard_max. */
	function cut(p, base, n, eof, prm) {
		const min = prm.min, max = prm.max, hard = prm.hard_max;
		if (n <= min)
			return eof ? n : 0;
		const lg = log2(prm.avg);
		let end = n < max ? n : max;
		const i = gearScan(p, base, min, prm.avg, end, topMask(lg + 2), topMask(lg - 2));
		if (i < end) {
			const j = p.subarray(base + i, base + end).indexOf(10);
			if (j >= 0)
				return i + j + 1;
			if (n < max && !eof)
				return 0;
		}
		if (n < max)
			return eof ? n : 0;
		const k = p.subarray(base, base + max).lastIndexOf(10);
		if (k >= 0)
			return k + 1;
		end = n < hard ? n : hard;
		const j = p.subarray(base + max, base + end).indexOf(10);
		if (j >= 0)
			return max + j + 1;
		if (n >= hard)
			return -1;
		return eof ? n : 0;
	}

	/* Cut a Blob (File) into chunks: for each window read, awaits
	 * onChunks(data, [[offset, length], ...], pos of data in the blob).
	 * Windows are at least 4 * max bytes, and grow (up to the end of the
	 * blob) when the chunker asks for more, so every cut is decided on as
	 * many bytes as the C chunker would see. */
	async function cutBlob(blob, prm, onChunks, window) {
		const size = blob.size;
		let pos = 0;
		window = Math.max(window || 0, prm.max * 4);
		while (pos < size) {
			let want = Math.min(window, size - pos);
			for (;;) {
				const data = new Uint8Array(await blob.slice(pos, pos + want).arrayBuffer());
				const eof = pos + data.length >= size;
				const cuts = [];
				let off = 0;
				while (off < data.length) {
					const c = cut(data, off, data.length - off, eof, prm);
					if (c < 0)
						throw new Error('a line longer than ' + prm.hard_max + ' bytes at byte ' + (pos + off) +
							' of ' + (blob.name || 'the file') + ': records longer than that are refused');
					if (c === 0)
						break;
					cuts.push([off, c]);
					off += c;
				}
				if (cuts.length) {
					await onChunks(data, cuts, pos);
					pos += off;
					break;
				}
				want = Math.min(size - pos, want * 2); // the chunker asked for more
			}
		}
	}

	return { cut, cutBlob, GHI, GLO };
})();

if (typeof module !== 'undefined')
	module.exports = VDChunker; // node, for comparing with the C chunker

/* ---- SHA-256: WebCrypto where the page is a secure context, else
 * Debian's CryptoJS (served by vdfsd), loaded on first use. ---- */
const VDHash = (() => {
	let cj = null;
	const load = (src) => new Promise((ok, bad) => {
		const s = document.createElement('script');
		s.src = src;
		s.onload = ok;
		s.onerror = () => bad(new Error('cannot load ' + src));
		document.head.append(s);
	});
	const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
	return async function sha256(u8) {
		if (window.crypto && crypto.subtle)
			return hex(await crypto.subtle.digest('SHA-256', u8));
		if (!cj)  // typedarrays patches WordArray.create, so it loads second
			cj = load('/ui/cryptojs-sha256.js').then(() => load('/ui/cryptojs-typedarrays.js'));
		await cj;
		return window.CryptoJS.SHA256(window.CryptoJS.lib.WordArray.create(u8)).toString();
	};
})();

if (typeof window !== 'undefined' && window.VD) (() => {
	const { h } = VD;
	const REQ_BYTES = 8 << 20; // about what vdfs put sends per POST /v1/chunks

	/* Walk dropped entries: [{file, path}] and the paths of empty directories. */
	async function walk(entries) {
		const files = [], dirs = [];
		const fileOf = (e) => new Promise((ok, bad) => e.file(ok, bad));
		const readAll = async (dir) => {
			const r = dir.createReader(), out = [];
			for (;;) {  // readEntries gives at most ~100 at a time
				const batch = await new Promise((ok, bad) => r.readEntries(ok, bad));
				if (!batch.length)
					return out;
				out.push(...batch);
			}
		};
		const rec = async (e, path) => {
			if (e.isFile) {
				files.push({ file: await fileOf(e), path });
			} else if (e.isDirectory) {
				const kids = await readAll(e);
				if (!kids.length && path)
					dirs.push(path);
				for (const k of kids)
					await rec(k, path ? path + '/' + k.name : k.name);
			}
		};
		if (entries.length === 1 && entries[0].isDirectory) {
			await rec(entries[0], '');
			return { files, dirs, root: entries[0].name, tree: true };
		}
		for (const e of entries)
			await rec(e, e.name);
		return { files, dirs, root: '', tree: !(files.length === 1 && entries[0].isFile && !dirs.length) };
	}

	VD.views.upload = function (root, args, ctx) {
		const s = VD.session;
		root.append(h('h1', { text: 'Upload' }));
		if (s.role !== 'submitter' && s.role !== 'operator') {
			root.append(h('p', { class: 'muted', text: 'You are signed in as a reader: you may browse and download ' +
				'every task, but not submit data or make tasks. Ask an operator for a submitter token.' }));
			return { refresh: async () => {} };
		}
		let sel = null, busy = false;
		const taskSel = h('select', { id: 'upload-task' });
		const files = h('input', { id: 'upload-files', type: 'file', multiple: true });
		const folder = h('input', { id: 'upload-folder', type: 'file', webkitdirectory: true, multiple: true });
		const drop = h('div', { id: 'dropzone', class: 'dropzone' },
			h('p', { text: 'Drop a file, several files or a folder here' }),
			h('div', { class: 'pickers' },
				h('label', {}, 'files ', files), h('label', {}, 'or a folder ', folder)));
		const chosen = h('div', { class: 'chosen muted', text: 'nothing chosen yet' });
		const name = h('input', { id: 'upload-name', type: 'text', size: 30, placeholder: 'data name (default: the file or folder name)' });
		const go = h('button', { id: 'upload-go', type: 'button', class: 'primary', text: 'upload' });
		const bar = h('progress', { id: 'upload-progress', value: 0, max: 1 });
		const status = h('div', { id: 'upload-status' });

		const fName = h('input', { id: 'new-task-name', type: 'text', required: true, size: 24, placeholder: 'name', autocomplete: 'off' });
		const fFn = h('input', { id: 'new-task-function', type: 'file' });
		const fCfg = h('textarea', { id: 'new-task-config', rows: 4, cols: 40, placeholder: 'key = value lines (optional), e.g. reduce = sum' });
		const fGo = h('button', { id: 'new-task-go', type: 'submit', text: 'create task' });
		const fStatus = h('div', { id: 'new-task-status' });
		const form = h('form', { id: 'create-task', class: 'form' },
			h('label', {}, h('span', { text: 'task name' }), fName),
			h('label', {}, h('span', { text: 'function (an executable file)' }), fFn),
			h('label', {}, h('span', { text: 'config' }), fCfg),
			h('div', {}, fGo), fStatus);

		root.append(
			h('section', {},
				h('div', { class: 'toolbar' }, h('label', {}, 'into task ', taskSel)),
				drop, chosen,
				h('div', { class: 'toolbar' }, name, go),
				h('div', { class: 'toolbar' }, bar), status),
			h('section', {}, h('h2', { text: 'Create a task' }), form));

		function say(el, text, cls) {
			el.textContent = text;
			el.className = cls || '';
		}

		function choose(x) {
			sel = x;
			const n = x.files.length, bytes = x.files.reduce((a, f) => a + f.file.size, 0);
			if (!n && !x.dirs.length) {
				chosen.textContent = 'nothing chosen yet';
				return;
			}
			const what = x.tree ? 'a tree' + (x.root ? ' "' + x.root + '"' : '') + ' of ' + n + ' file' + (n === 1 ? '' : 's')
				: 'one file "' + x.files[0].path + '"';
			chosen.replaceChildren(what + ', ' + VD.human(bytes),
				h('ul', {}, x.files.slice(0, 12).map((f) => h('li', { text: f.path + ' (' + VD.human(f.file.size) + ')' })),
					n > 12 ? h('li', { text: '… ' + (n - 12) + ' more' }) : null));
		}

		files.addEventListener('change', () => {
			const fs = [...files.files];
			choose({ files: fs.map((f) => ({ file: f, path: f.name })), dirs: [], root: '', tree: fs.length > 1 });
		});
		folder.addEventListener('change', () => {
			const fs = [...folder.files];
			const rootName = fs.length ? fs[0].webkitRelativePath.split('/')[0] : '';
			choose({ files: fs.map((f) => ({ file: f, path: f.webkitRelativePath.split('/').slice(1).join('/') || f.name })),
				dirs: [], root: rootName, tree: true });
		});
		drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
		drop.addEventListener('dragleave', () => drop.classList.remove('over'));
		drop.addEventListener('drop', async (e) => {
			e.preventDefault();
			drop.classList.remove('over');
			const items = [...(e.dataTransfer.items || [])].filter((i) => i.kind === 'file');
			const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null)).filter(Boolean);
			try {
				if (entries.length)
					choose(await walk(entries));
				else {
					const fs = [...e.dataTransfer.files];
					choose({ files: fs.map((f) => ({ file: f, path: f.name })), dirs: [], root: '', tree: fs.length > 1 });
				}
			} catch (err) {
				say(status, 'cannot read what was dropped: ' + err.message, 'err');
			}
		});

		async function loadTasks(pick) {
			const j = await VD.json('/v1/tasks');
			if (!ctx.alive())
				return;
			const want = pick || taskSel.value || args.task;
			const mine = (j.tasks || []).filter((t) => VD.mayCommit(t));
			const have = [...taskSel.options].map((o) => o.value).join('\x00');
			if (!taskSel.options.length || have !== mine.map((t) => t.name).join('\x00')) {
				taskSel.replaceChildren(...mine.map((t) => h('option', { value: t.name, text: t.name + (t.owner ? ' (' + t.owner + ')' : '') })));
				if (!mine.length)
					taskSel.append(h('option', { value: '', text: '(no task you may upload into: make one below)' }));
			}
			if (want && mine.some((t) => t.name === want))
				taskSel.value = want;
		}

		/* The upload itself: cut and hash, ask what is missing, send that,
		 * commit the manifest. */
		async function upload() {
			const task = taskSel.value;
			if (!task)
				throw new Error('choose a task to upload into');
			if (!sel || (!sel.files.length && !sel.dirs.length))
				throw new Error('choose or drop files first');
			const u = await VD.json('/v1/upload');
			const prm = { min: u.chunking.min, avg: u.chunking.avg, max: u.chunking.max, hard_max: u.chunking.hard_max };
			const total = sel.files.reduce((a, f) => a + f.file.size, 0);
			let hashed = 0, sent = 0;
			bar.max = Math.max(1, 2 * total);  // hashing, then sending (or finding it there)
			bar.value = 0;
			const tick = () => { bar.value = Math.min(bar.max, hashed + sent); };

			const byFp = new Map(), entries = [];
			for (const f of sel.files) {
				say(status, 'hashing ' + f.path + '…');
				const fps = [];
				await VDChunker.cutBlob(f.file, prm, async (data, cuts, pos) => {
					const hs = await Promise.all(cuts.map(([o, c]) => VDHash(data.subarray(o, o + c))));
					cuts.forEach(([o, c], k) => {
						fps.push(hs[k]);
						if (!byFp.has(hs[k]))
							byFp.set(hs[k], { file: f.file, start: pos + o, len: c });
						hashed += c;
					});
					tick();
				});
				entries.push({ f, fps });
			}

			say(status, 'asking which of ' + byFp.size + ' chunks the daemon lacks…');
			const all = [...byFp.keys()], missing = [];
			for (let i = 0; i < all.length; i += u.query_max) {
				const r = await VD.json('/v1/chunks/missing', { method: 'POST', json: { fingerprints: all.slice(i, i + u.query_max) } });
				missing.push(...r.missing);
			}
			const missBytes = missing.reduce((a, fp) => a + byFp.get(fp).len, 0);
			sent = total - missBytes; // what the store has (and repeats) needs no sending
			tick();

			let newBytes = 0, sentNew = 0;
			const send = async (fps) => {
				const cap = Math.min(REQ_BYTES, u.batch_max);
				let parts = [], size = 0;
				const flush = async () => {
					if (!parts.length)
						return;
					const body = new Blob(parts, { type: 'application/octet-stream' });
					parts = [];
					size = 0;
					newBytes += (await VD.json('/v1/chunks', { method: 'POST', body })).new_bytes || 0;
				};
				for (const fp of fps) {
					const c = byFp.get(fp), head = fp + ' ' + c.len + '\n';
					if (size && size + head.length + c.len > cap)
						await flush();
					parts.push(head, c.file.slice(c.start, c.start + c.len));
					size += head.length + c.len;
					if (size >= cap)
						await flush();
					sent += c.len;
					sentNew += c.len;
					say(status, 'sending ' + VD.human(sentNew) + ' of ' + VD.human(missBytes) + ' the daemon lacks…');
					tick();
				}
				await flush();
			};
			await send(missing);

			const man = !sel.tree
				? { name: name.value.trim() || sel.files[0].file.name, kind: 'file', size: sel.files[0].file.size, chunks: entries[0].fps }
				: { name: name.value.trim() || sel.root || 'upload-' + VD.time(Date.now()).replace(/[ :]/g, '-'), kind: 'tree',
					files: entries.map((e) => ({ path: e.f.path, type: 'file', size: e.f.file.size, chunks: e.fps }))
						.concat(sel.dirs.map((d) => ({ path: d, type: 'dir' }))) };
			say(status, 'committing ' + man.name + '…');
			let res;
			for (let tries = 0; ; tries++) {
				try {
					res = await VD.json('/v1/tasks/' + VD.enc(task) + '/versions', { method: 'POST', json: man });
					break;
				} catch (e) {
					// 409: a gc swept chunks between the question and the commit
					if (e.status !== 409 || !e.body || !e.body.missing || tries >= 3)
						throw e;
					await send(e.body.missing.filter((fp) => byFp.has(fp)));
				}
			}
			bar.value = bar.max;
			say(status, 'done: ' + VD.human(total) + ' in ' + sel.files.length + ' file' + (sel.files.length === 1 ? '' : 's') +
				', ' + VD.human(newBytes) + ' new, ' + VD.human(total - newBytes) + ' already there' +
				(res.new ? '' : ' (this content was a version already; it is latest again)') + ' — version ' + res.data_id, 'ok');
			status.dataset.id = res.data_id;
			status.dataset.done = '1';
		}

		go.addEventListener('click', async () => {
			if (busy)
				return;
			busy = true;
			go.disabled = true;
			delete status.dataset.done;
			delete status.dataset.id;
			try {
				await upload();
			} catch (e) {
				say(status, 'upload failed: ' + e.message, 'err');
			} finally {
				busy = false;
				go.disabled = false;
			}
		});

		form.addEventListener('submit', async (e) => {
			e.preventDefault();
			delete fStatus.dataset.done;
			const t = fName.value.trim();
			if (!t)
				return say(fStatus, 'give the task a name', 'err');
			fGo.disabled = true;
			let made = false;
			try {
				say(fStatus, 'creating ' + t + '…');
				await VD.json('/v1/tasks', { method: 'POST', json: { name: t } });
				made = true;
				const tp = '/v1/tasks/' + VD.enc(t);
				if (fFn.files.length)
					await VD.json(tp + '/function', { method: 'PUT', body: fFn.files[0] });
				if (fCfg.value.trim())
					await VD.json(tp + '/config', { method: 'PUT', body: fCfg.value, headers: { 'Content-Type': 'text/plain' } });
				say(fStatus, 'task ' + t + ' created' + (fFn.files.length ? '' : ' (no function yet)'), 'ok');
				fStatus.dataset.done = '1';
				await loadTasks(t);
			} catch (err) {
				say(fStatus, (made ? 'task ' + t + ' was made, but: ' : '') + err.message, 'err');
				if (made)
					loadTasks(t).catch(() => {});
			} finally {
				fGo.disabled = false;
			}
		});

		return { refresh: () => loadTasks() };
	};
})();
