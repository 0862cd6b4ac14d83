"""Securities and markets: pure recognition of the tickers an item names, and the
market-clock interface freshness schedules by.

Enters: item text, a prebuilt name matcher, instants. Leaves: sorted ticker codes
(``600519.SH``), open/closed answers. Floor 1: imports only model, errors and text; the
exchange-calendars adapter (``exchanges``) imports its library lazily.
"""
