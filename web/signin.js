/* signin.js - trade a user token for a session cookie (POST /v1/session). */
'use strict';

document.addEventListener('DOMContentLoaded', () => {
	const form = document.getElementById('signin-form');
	const err = document.getElementById('signin-error');
	const btn = document.getElementById('signin');
	form.addEventListener('submit', async (e) => {
		e.preventDefault();
		err.textContent = '';
		btn.disabled = true;
		try {
			const r = await fetch('/v1/session', {
				method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
				body: JSON.stringify({ token: document.getElementById('token').value.trim() }),
			});
			if (r.ok) {
				location.href = '/';
				return;
			}
			let msg = r.status === 401 ? 'that token is not valid (or its user was revoked)' : r.status + ' ' + r.statusText;
			try {
				const j = await r.json();
				if (j && j.error)
					msg = j.error;
			} catch (x) { /* not JSON */ }
			err.textContent = msg;
		} catch (x) {
			err.textContent = 'cannot reach the daemon: ' + x.message;
		} finally {
			btn.disabled = false;
		}
	});
});
