/**
 * The Meridian components a local clusterset runs. Each import registers one with
 * `registerLocalComponent`; they start concurrently.
 */
import "./dns.js";

import "./controller.js";

import "./gateway.js";
