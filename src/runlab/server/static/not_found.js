/* The not-found page needs no script; this file keeps every page's layout the same. */
"use strict";
document.body.dataset.ready = "1";
