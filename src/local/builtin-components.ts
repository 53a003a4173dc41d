/**
 * The Meridian components a local clusterset runs. Each import registers one with
 * `registerLocalComponent`; order here is start order.
 */
import "./dns.js";

import "./controller.js";
