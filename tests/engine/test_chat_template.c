/*
 * test_chat_template.c — the Jinja2 subset behind chat_template.h, one
 * feature at a time, with expected output worked out by hand from jinja2's
 * rules (tests/chat/render_reference.py checks the real templates against
 * jinja2 itself): whitespace control, statements, scoping, filters, tests,
 * expressions with Python's semantics, undefined values, errors with their
 * positions, and the limits that stop hostile templates.
 */
#include "test_util.h"

#include <pthread.h>
#include <time.h>

#include "chat_template.h"

#define MSGS "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi é\"}]"

/* Render src with messages (NULL: MSGS), tools and extra JSON; the status, text in out. */
static lg_status
render_full(const char *src, const char *messages, const char *tools, const char *extra, bool gen,
			lg_buf *out, lg_error *err)
{
	lg_chat_template *t;
	lg_chat_render_params p;
	lg_status	st;

	lg_error_clear(err);
	t = lg_chat_template_parse(src, strlen(src), err);
	if (t == NULL)
		return err->status;
	memset(&p, 0, sizeof(p));
	p.messages_json = messages ? messages : MSGS;
	p.messages_len = strlen(p.messages_json);
	p.tools_json = tools;
	p.tools_len = tools ? strlen(tools) : 0;
	p.extra_json = extra;
	p.extra_len = extra ? strlen(extra) : 0;
	p.add_generation_prompt = gen;
	p.bos_token = "<s>";
	p.eos_token = "</s>";
	p.now_unix = 1721995200;	/* 2024-07-26 12:00:00 UTC */
	st = lg_chat_template_render(t, &p, out, err);
	lg_chat_template_free(t);
	return st;
}

/* src must render to expected. */
static void
expect_render_with(const char *src, const char *extra, const char *expected)
{
	lg_buf		out;
	lg_error	err;
	lg_status	st;

	lg_buf_init(&out);
	st = render_full(src, NULL, NULL, extra, true, &out, &err);
	if (st != LG_OK)
		fail_msg("template %s failed: %s", src, err.msg);
	if (strcmp(out.data ? out.data : "", expected) != 0)
		fail_msg("template %s\n  rendered [%s]\n  expected [%s]", src, out.data ? out.data : "", expected);
	lg_buf_free(&out);
}

static void
expect_render(const char *src, const char *expected)
{
	expect_render_with(src, NULL, expected);
}

/* src must fail with status st and a message containing part. */
static void
expect_error(const char *src, lg_status st, const char *part)
{
	lg_buf		out;
	lg_error	err;
	lg_status	got;

	lg_buf_init(&out);
	got = render_full(src, NULL, NULL, NULL, true, &out, &err);
	if (got != st)
		fail_msg("template %s: status %s (%s), expected %s", src, lg_status_name(got),
				 got ? err.msg : out.data, lg_status_name(st));
	if (strstr(err.msg, part) == NULL)
		fail_msg("template %s: message [%s] lacks [%s]", src, err.msg, part);
	lg_buf_free(&out);
}

/* {{- -}}, trim_blocks, lstrip_blocks, +, comments, the final newline. */
static void
test_whitespace(void **state)
{
	(void) state;
	expect_render("a {{- ' b ' -}} c", "a b c");
	expect_render("{% if true %}\nx\n{% endif %}\ny", "x\ny");
	expect_render("  {% if true %}\n  x\n  {% endif %}\n", "  x\n");
	expect_render("  {%+ if true %}x{% endif %}", "  x");
	expect_render("{% if true +%}\nx{% endif %}", "\nx");
	expect_render("a {%- if true %} b {% endif -%} c", "a b c");
	expect_render("a{# comment #}b", "ab");
	expect_render("a\n  {# comment #}\nb", "a\nb");
	expect_render("a {#- comment -#} b", "ab");
	expect_render("  {{ 'x' }}\n", "  x");			/* lstrip is for blocks only; one final \n goes */
	expect_render("x\n\n", "x\n");
	expect_render("a\r\nb", "a\nb");
	expect_render("{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}");
	expect_render("\t{% if true %}\u00a0x{% endif %}", "\u00a0x");	/* tab before a block on its own line */
}

/* if/elif/else, for with loop variables, filters, else, unpacking, break, continue. */
static void
test_statements(void **state)
{
	(void) state;
	expect_render("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "c");
	expect_render("{% if none %}a{% else %}d{% endif %}", "d");
	expect_render("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
				  "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}",
				  "10TrueFalse332|21FalseFalse321|32FalseTrue310|");
	expect_render("{% for x in 'abc' %}{{ loop.previtem }}{{ x }}{{ loop.nextitem }};{% endfor %}",
				  "ab;abc;bc;");
	expect_render("{% for x in [1,2,3,4] if x is even %}{{ x }}/{{ loop.length }};{% else %}none{% endfor %}",
				  "2/2;4/2;");
	expect_render("{% for x in [] %}{{ x }}{% else %}none{% endfor %}", "none");
	expect_render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}", "a=1,b=2,");
	expect_render("{% for k, v in {'a': 1, 'b': 2}|items %}{{ k }}{{ v }}{% endfor %}", "a1b2");
	expect_render("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", "xy");
	expect_render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
				  "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "013");
	expect_render("{% for a in [1,2] %}{% for b in 'xy' %}{{ loop.depth }}{{ a }}{{ b }} {% endfor %}{% endfor %}",
				  "11x 11y 12x 12y ");
	expect_render("{% for x in [1,2,3] %}{{ loop.cycle('o', 'e') }}{% endfor %}", "oeo");
	expect_render("{% for m in messages %}{{ m.role }}:{{ m['content'] }};{% endfor %}",
				  "system:Be brief.;user:Hi é;");
	expect_render("{% with a = 1, b = 'x' %}{{ a }}{{ b }}{% endwith %}{{ a }}", "1x");
	expect_render("{% filter upper %}ab{{ 'c' }}{% endfilter %}", "ABC");
	expect_render("{% block body %}in a block{% endblock %}", "in a block");
	expect_render("{% generation %}kept{% endgeneration %}", "kept");	/* transformers' AssistantTracker */
	expect_render("{% print 1 + 1 %}", "2");
}

/* set, block set, namespaces and jinja2's scoping. */
static void
test_set_and_scope(void **state)
{
	(void) state;
	expect_render("{% set x = 1 %}{% set a, b = 'p', 'q' %}{{ x }}{{ a }}{{ b }}", "1pq");
	expect_render("{% set b %}hi {{ 1 + 1 }}{% endset %}[{{ b }}]", "[hi 2]");
	expect_render("{% set b | upper %}hi{% endset %}{{ b }}", "HI");
	expect_render("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
				  "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }} {{ ns['n'] }}", "6 0123 6");
	expect_render("{% set ns = namespace() %}{% set ns.x = 'set' %}{{ ns.x }}{{ ns.missing }}", "set");
	/* a set in a loop body lasts one iteration, and never leaks out */
	expect_render("{% set x = 0 %}{% for i in [1,2,3] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}{{ x }}",
				  "[0](1)[0](2)[0](3)0");
	/* an if opens no scope */
	expect_render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", "5");
	/* context variables may be overridden, as templates do with messages */
	expect_render("{% set messages = messages[1:] %}{{ messages|length }}", "1");
	expect_render_with("{{ extra_var }}-{{ tools is none }}-{{ documents is none }}", "{\"extra_var\": [1]}",
					   "[1]-True-True");
	expect_error("{% set x = 1 %}{% set x.y = 2 %}", LG_ERR_FORMAT, "non-namespace");
}

/* Macros: defaults, keyword arguments, recursion, late binding, caller. */
static void
test_macros(void **state)
{
	(void) state;
	expect_render("{% macro m(a, b='B', c=3) %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
				  "{{ m(1) }}|{{ m(1, c=9) }}|{{ m(a=5, b='x') }}|{{ m() }}", "1B3|1B9|5x3|B3");
	expect_render("{% macro f(n) %}{% if n <= 1 %}1{% else %}{{ n * f(n - 1)|int }}{% endif %}{% endmacro %}"
				  "{{ f(5) }}", "120");
	expect_render("{% macro m() %}{{ z }}{% endmacro %}{% set z = 3 %}{{ m() }}{% set z = 4 %}{{ m() }}", "34");
	expect_render("{% set z = 1 %}{% macro m() %}{% set z = 2 %}{{ z }}{% endmacro %}{{ m() }}{{ z }}", "21");
	expect_render("{% macro w(t) %}[{{ t }}:{{ caller() }}]{% endmacro %}{% call w('T') %}in{% endcall %}",
				  "[T:in]");
	expect_render("{% macro m(x) %}{{ x }}{% endmacro %}{{ m is callable }}{{ m('a') ~ m('b') }}", "Trueab");
	expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", LG_ERR_FORMAT, "takes not more than 1");
	expect_error("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", LG_ERR_FORMAT, "no keyword argument 'b'");
	expect_error("{{ nomacro() }}", LG_ERR_FORMAT, "'nomacro' is undefined");
}

/* Literals, operators, precedence, Python's arithmetic and reprs. */
static void
test_expressions(void **state)
{
	(void) state;
	expect_render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}",
				  "3 -4 -2 1024 3.5 7 9");
	expect_render("{{ 2 ** -1 }} {{ 4 / 2 }} {{ 1.5 + 1 }} {{ true + 1 }} {{ 0x1f }} {{ 1_000 }}",
				  "0.5 2.0 2.5 2 31 1000");
	expect_render("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 100.0 }} {{ -0.0 }} {{ 1.5e300 * 1e10 }}",
				  "0.30000000000000004 1e+16 1000000000000000.0 1e-05 100.0 -0.0 inf");
	expect_render("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ [0] * 2 }}",
				  "a1NoneTrue ababab [1, 2] [0, 0]");
	expect_render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 4 }} {{ 'a' in 'cat' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }}",
				  "True False True True True");
	expect_render("{{ 0 or 'x' }}|{{ '' and 1 }}|{{ 2 and 3 }}|{{ not 0 }}", "x||3|True");
	expect_render("{{ 'y' if 1 > 2 else 'n' }}|{{ 'y' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}", "n||3");
	expect_render("{{ [1, 'a', none, 1.0, (1,), {'k': true}, \"it's\"] }}",
				  "[1, 'a', None, 1.0, (1,), {'k': True}, \"it's\"]");
	expect_render("{{ 'a\\tb\\n' + \"\\x41\\u00e9\" }}", "a\tb\nAé");
	expect_render("{{ 'héllo'[1:3] }} {{ 'héllo'[1] }} {{ 'abc'[-1] }} {{ 'abc'[::-1] }} {{ [1,2,3,4][::-1] }} "
				  "{{ [1,2,3][1:] }} {{ [1,2,3][:-1] }} {{ [1,2,3,4,5][::2] }}",
				  "él é c cba [4, 3, 2, 1] [2, 3] [1, 2] [1, 3, 5]");
	expect_render("{{ {'a': {'b': [10, 20]}}.a.b.1 }} {{ {'a': 1}['a'] }} {{ [1, 2][5] }}|", "20 1 |");
	expect_render("{{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 'a' != 'b' }} {{ none == none }}",
				  "True True True True True");
	expect_render("{{ '%s-%d-%.2f-%5s|%-3s|' % ('x', 3, 2.5, 'r', 'l') }} {{ '%s' % 'one' }} {{ '%(k)s' % {'k': 'v'} }}",
				  "x-3-2.50-    r|l  | one v");
	expect_error("{{ 'a' + 1 }}", LG_ERR_FORMAT, "can only concatenate str (not \"int\") to str");
	expect_error("{{ 1 / 0 }}", LG_ERR_FORMAT, "division by zero");
	expect_error("{{ 1 < 'a' }}", LG_ERR_FORMAT, "not supported between instances of 'int' and 'str'");
	expect_error("{{ 9223372036854775807 + 1 }}", LG_ERR_RANGE, "integer overflow");
}

/* Methods of strings, dicts and lists that templates call. */
static void
test_methods(void **state)
{
	(void) state;
	expect_render("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|",
				  "a b|a|a|a|");
	expect_render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}",
				  "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b,c'] ['a,b', 'c']");
	expect_render("{{ 'x</think>y</think>z'.split('</think>')[-1] }}", "z");
	expect_render("{{ 'abc'.startswith('ab') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }}",
				  "True True True");
	expect_render("{{ 'aXa'.replace('a', 'b') }} {{ 'Hello'.upper() }} {{ 'ÉCOLE'.lower() }} {{ 'hello world'.title() }}",
				  "bXb HELLO école Hello World");
	expect_render("{{ '{} and {}'.format(1, 'x') }} {{ '{0}{0}'.format('r') }} {{ '{n}!'.format(n=2) }}",
				  "1 and x rr 2!");
	expect_render("{{ 'a-b'.find('-') }} {{ 'ab'.find('z') }} {{ 'aaa'.count('a') }} {{ '-'.join(['a', 'b']) }}",
				  "1 -1 3 a-b");
	expect_render("{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} "
				  "{{ d.keys()|list }} {{ d.values()|list }}", "1 dflt None ['a', 'b'] [1, 2]");
	/* a dict's methods win over its keys for `.`, not for `[]` */
	expect_render("{% set d = {'items': 'key'} %}{{ d['items'] }} {{ d.items is callable }}", "key True");
	expect_render("{{ [1, 2, 1].count(1) }} {{ ['a', 'b'].index('b') }}", "2 1");
	expect_error("{{ [1].append(2) }}", LG_ERR_FORMAT, "");	/* the immutable sandbox has no append */
}

/* Filters. */
static void
test_filters(void **state)
{
	(void) state;
	expect_render("{{ {'a': [1, 2.5, 'é', none, true]}|tojson }}", "{\"a\": [1, 2.5, \"é\", null, true]}");
	expect_render("{{ {'a': [1, 2.5], 'b': {}}|tojson(indent=2) }}",
				  "{\n  \"a\": [\n    1,\n    2.5\n  ],\n  \"b\": {}\n}");
	expect_render("{{ {'a': [1, 2]}|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}",
				  "{\"a\":[1,2]} {\"a\": 2, \"b\": 1}");
	expect_render("{{ 'q\"\\\\\\n\\x01'|tojson }}", "\"q\\\"\\\\\\n\\u0001\"");
	expect_render("{{ messages[1]|tojson }}", "{\"role\": \"user\", \"content\": \"Hi é\"}");
	expect_render("{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'abc'|length }}{{ [1, 2]|count }}{{ {'a': 1}|length }}",
				  "x|hi|321");
	expect_render("{{ [1, 2, 3]|join(', ') }} {{ [{'n': 'a'}, {'n': 'b'}]|map(attribute='n')|join }} {{ [1, 2]|map('string')|list }}",
				  "1, 2, 3 ab ['1', '2']");
	expect_render("{% set xs = [{'t': 'a', 'v': 1}, {'t': 'b', 'v': 2}, {'t': 'a', 'v': 3}] %}"
				  "{{ xs|selectattr('t', 'equalto', 'a')|map(attribute='v')|list }} "
				  "{{ xs|rejectattr('t', 'eq', 'a')|map(attribute='v')|list }} "
				  "{{ xs|selectattr('v', 'gt', 1)|list|length }} {{ [0, 1, '', 'x']|select|list }} "
				  "{{ [1, 2, 3]|reject('odd')|list }}",
				  "[1, 3] [2] 2 [1, 'x'] [2]");
	expect_render("{{ [3, 1]|first }}{{ [3, 1]|last }}{{ 'ab'|first }}|{{ []|first }}|", "31a||");
	expect_render("{{ nope|default('d') }}{{ ''|default('e') }}{{ ''|default('e', true) }}{{ nope|d('f') }}", "def");
	expect_render("{{ 'ab'|list }} {{ (1, 2)|list }} {{ 12|string ~ 'x' }} {{ none|string }}", "['a', 'b'] [1, 2] 12x None");
	expect_render("{{ 'hELLO wOrld'|capitalize }} {{ 'hello big-world (x)'|title }} {{ 'aé'|upper }} {{ 'AÉ'|lower }}",
				  "Hello world Hello Big-World (X) AÉ aé");
	expect_render("{{ 'a-b-c'|replace('-', '+') }} {{ 'a-b-c'|replace('-', '', 1) }}", "a+b+c ab-c");
	expect_render("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\nb\\n'|indent }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ '{\\n'|indent(4, first=true) }}",
				  "a\n  b\n\n  c|  a\n  b|a\n    b\n|a\n  \n  b|    {\n");
	expect_render("{{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') }} {{ 3|round }}",
				  "2.57 2.0 4.0 3.0 3");
	expect_render("{{ 3.7|int }} {{ '42'|int }} {{ 'x'|int }} {{ '3.5'|int }} {{ '3.5'|float }} {{ 4|float }} {{ 'y'|float }} {{ -3|abs }}",
				  "3 42 0 3 3.5 4.0 0.0 3");
	expect_render("{{ ['b', 'A', 'a']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A']|sort(case_sensitive=true) }} "
				  "{{ [{'k': 2}, {'k': 1}]|sort(attribute='k')|map(attribute='k')|list }}",
				  "['A', 'a', 'b'] [3, 2, 1] ['A', 'b'] [1, 2]");
	expect_render("{{ [1, 2, 1, 3]|unique|list }} {{ ['a', 'A']|unique|list }} {{ {'b': 1, 'a': 2}|dictsort }} "
				  "{{ {'b': 1, 'a': 2}|dictsort(by='value') }}",
				  "[1, 2, 3] ['a'] [('a', 2), ('b', 1)] [('b', 1), ('a', 2)]");
	expect_render("{{ [1, 2, 3]|sum }} {{ [1, 5, 2]|max }} {{ [4, 2]|min }} {{ 'abc'|reverse }} {{ [1, 2]|reverse|list }}",
				  "6 5 2 cba [2, 1]");
	expect_render("{{ '%s=%d'|format('x', 2) }} {{ 'one two  three'|wordcount }} {{ '<a&b>'|e }}",
				  "x=2 3 &lt;a&amp;b&gt;");
	/* Markup: a safe string joined to a plain one escapes the plain one, as markupsafe does */
	expect_render("{{ 'x'|safe + '<&>' }}|{{ 'x' ~ '<'|safe }}|{{ '<'|safe }}", "x&lt;&amp;&gt;|x<|<");
	/* map/select give one-shot generators, as in jinja2 */
	expect_render("{% set g = [1, 2]|map('string') %}{{ g|join }}|{{ g|join }}|{{ g is iterable }}", "12||True");
	expect_error("{{ [1]|map('string')|length }}", LG_ERR_FORMAT, "object of type 'generator' has no len()");
	expect_error("{{ [1]|map('string')|tojson }}", LG_ERR_FORMAT, "not JSON serializable");
	expect_error("{{ x|nofilter }}", LG_ERR_FORMAT, "line 1, column 6: no filter named 'nofilter'");
}

/* Tests (`is`). */
static void
test_tests(void **state)
{
	(void) state;
	expect_render("{{ x is defined }}{{ x is undefined }}{{ messages is defined }}{{ none is none }}{{ 0 is none }}",
				  "FalseTrueTrueTrueFalse");
	expect_render("{{ 'a' is string }}{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1 is integer }}{{ 1.0 is float }}",
				  "TrueTrueTrueFalseTrueTrue");
	expect_render("{{ {} is mapping }}{{ [] is mapping }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ x is iterable }}{{ {} is sequence }}",
				  "TrueFalseTrueFalseTrueTrue");
	expect_render("{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}",
				  "TrueFalseTrueFalseTrue");
	expect_render("{{ 'a' is equalto 'a' }}{{ 2 is eq 3 }}{{ 1 is in [1, 2] }}{{ 3 is odd }}{{ 4 is even }}"
				  "{{ 9 is divisibleby 3 }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 1 is not none }}",
				  "TrueFalseTrueTrueTrueTrueTrueTrueTrue");
	expect_render("{{ 2 is gt 1 }}{{ 2 is le 1 }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'nope' is filter }}",
				  "TrueFalseTrueTrueFalse");
	expect_error("{{ x is nottest }}", LG_ERR_FORMAT, "no test named 'nottest'");
}

/* Undefined values as jinja2's default Undefined: print as nothing, fail when used. */
static void
test_undefined(void **state)
{
	(void) state;
	expect_render("[{{ nope }}]{% for x in nope %}x{% endfor %}{{ nope|length }}{{ not nope }}{{ nope == nope }}",
				  "[]0TrueTrue");
	expect_render("{{ messages[0].nope }}|{{ messages[0].nope is defined }}|{{ messages[9] is defined }}", "|False|False");
	expect_render("{{ nope ~ 'x' }}{{ nope|trim }}{{ nope|string }}|{{ 'x' in nope }}", "x|False");
	expect_error("{{ nope.attr }}", LG_ERR_FORMAT, "'nope' is undefined");
	expect_error("{{ nope + 1 }}", LG_ERR_FORMAT, "'nope' is undefined");
	expect_error("{{ messages[5]['role'] }}", LG_ERR_FORMAT, "list object has no element 5");
	expect_error("{{ messages[0].nope.deeper }}", LG_ERR_FORMAT, "'dict object' has no attribute 'nope'");
	expect_error("{{ nope|tojson }}", LG_ERR_FORMAT, "not JSON serializable");
}

/* The variables a render gets, raise_exception, strftime_now. */
static void
test_globals(void **state)
{
	lg_buf		out;
	lg_error	err;

	(void) state;
	expect_render("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}", "<s>|</s>|True|None");
	expect_render("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }} {{ dict(a=1) }}",
				  "[0, 1, 2] [1, 3, 5] [3, 2, 1] {'a': 1}");
	expect_render("{{ strftime_now('%Y-%m-%d %H:%M') }} {{ strftime_now('%d %b %Y') }}",
				  "2024-07-26 12:00 26 Jul 2024");
	expect_error("{{ raise_exception('Roles must alternate!') }}", LG_ERR_ARG, "Roles must alternate!");

	lg_buf_init(&out);
	assert_int_equal(render_full("{{ tools|length }}{{ tools[0].function.name }}", NULL,
								 "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", NULL, true, &out, &err), LG_OK);
	assert_string_equal(out.data, "1f");
	lg_buf_free(&out);

	/* a raised exception's message is the template's text, whole */
	lg_buf_init(&out);
	assert_int_equal(render_full("x{{ raise_exception('bad: ' ~ messages|length) }}", NULL, NULL, NULL, true, &out, &err),
					 LG_ERR_ARG);
	assert_string_equal(err.msg, "bad: 2");
	assert_null(out.data);		/* nothing is appended on failure */
	lg_buf_free(&out);

	lg_buf_init(&out);
	assert_int_equal(render_full("{% if add_generation_prompt %}yes{% else %}no{% endif %}", NULL, NULL, NULL, false,
								 &out, &err), LG_OK);
	assert_string_equal(out.data, "no");
	lg_buf_free(&out);
}

/* Syntax errors carry line and column; unknown tags, bad UTF-8, unsupported tags. */
static void
test_syntax_errors(void **state)
{
	(void) state;
	expect_error("{% if x %}never closed", LG_ERR_FORMAT, "'endif'");
	expect_error("{{ 1 + }}", LG_ERR_FORMAT, "line 1, column 8:");
	expect_error("line one\nline {{ two ]] }}", LG_ERR_FORMAT, "line 2, column 13: unexpected ']'");
	expect_error("a\nb\n  {% frobnicate %}", LG_ERR_FORMAT, "line 3, column 6: encountered unknown tag 'frobnicate'");
	expect_error("{% for x in %}{% endfor %}", LG_ERR_FORMAT, "line 1, column 13");
	expect_error("{# never closed", LG_ERR_FORMAT, "line 1, column 1: missing end of comment tag");
	expect_error("{{ 'unterminated }}", LG_ERR_FORMAT, "unexpected char");
	expect_error("{% endif %}", LG_ERR_FORMAT, "unknown tag 'endif'");
	expect_error("{% break %}", LG_ERR_FORMAT, "'break' outside of a loop");
	expect_error("{{ 'a' is 'b' }}", LG_ERR_FORMAT, "line 1");
	expect_error("{% include 'x.jinja' %}", LG_ERR_UNSUPPORTED, "'include' tag is not supported");
	expect_error("{{ 'abc'|truncate(2) }}", LG_ERR_UNSUPPORTED, "line 1, column 10: the filter 'truncate' is not supported");
	expect_error("bad \xff byte", LG_ERR_FORMAT, "not valid UTF-8 (byte 4)");
	expect_error("{{ '\\x4' }}", LG_ERR_FORMAT, "truncated \\xXX escape");
}

/* Limits: recursion, loop steps, output size, memory, range. */
static void
test_limits(void **state)
{
	(void) state;
	expect_error("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}", LG_ERR_RANGE, "recurses more than");
	expect_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
				 LG_ERR_RANGE, "steps");
	expect_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", LG_ERR_RANGE, "longer than");
	expect_error("{% set s = 'x' * 100000000 %}", LG_ERR_RANGE, "memory");
	expect_error("{{ range(1000000)|length }}", LG_ERR_RANGE, "Range too big");
	expect_error("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns.x|tojson }}", LG_ERR_FORMAT, "Namespace");
	expect_error("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}", LG_ERR_RANGE, "nested");
	/* values nested deeper than any limit on parsing, compared: an error, not a stack overflow */
	expect_error("{% set ns = namespace(a=1, b=1) %}{% for i in range(5000) %}{% set ns.a = [ns.a] %}"
				 "{% set ns.b = [ns.b] %}{% endfor %}{{ ns.a == ns.b }}", LG_ERR_RANGE, "nested more than");
	/* (dict keys nested that deep never match: a divergence from Python, but no crash) */
	expect_render("{% set ns = namespace(a=1) %}{% for i in range(5000) %}{% set ns.a = (ns.a,) %}{% endfor %}"
				  "{{ {ns.a: 1}[ns.a] }}", "");
	{
		/* nesting deeper than the parser allows fails cleanly */
		char		deep[4000];
		size_t		o = 0;

		o += (size_t) snprintf(deep + o, sizeof(deep) - o, "{{ ");
		for (int i = 0; i < 1000; i++)
			deep[o++] = '(';
		deep[o++] = '1';
		for (int i = 0; i < 1000; i++)
			deep[o++] = ')';
		snprintf(deep + o, sizeof(deep) - o, " }}");
		expect_error(deep, LG_ERR_FORMAT, "nested too deeply");
	}
}

/* Bad JSON input is the caller's error. */
static void
test_bad_input(void **state)
{
	lg_buf		out;
	lg_error	err;

	(void) state;
	lg_buf_init(&out);
	assert_int_equal(render_full("x", "[{\"role\":", NULL, NULL, true, &out, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "messages:"));
	assert_int_equal(render_full("x", "{\"role\":\"user\"}", NULL, NULL, true, &out, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "must be a JSON array"));
	assert_int_equal(render_full("x", "[]", "[1,", NULL, true, &out, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "tools:"));
	assert_int_equal(render_full("x", "[]", NULL, "[1]", true, &out, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "extra: must be a JSON object"));
	lg_buf_free(&out);
}

/* A ChatML template as Qwen ships it, worked out by hand, tool call included. */
static void
test_chatml_by_hand(void **state)
{
	static const char *tpl =
		"{%- for message in messages %}\n"
		"    {%- if message.role == 'assistant' and message.tool_calls %}\n"
		"        {{- '<|im_start|>assistant' }}\n"
		"        {%- for tc in message.tool_calls %}\n"
		"            {{- '\\n<tool_call>\\n' ~ {'name': tc.function.name, 'arguments': tc.function.arguments}|tojson ~ '\\n</tool_call>' }}\n"
		"        {%- endfor %}\n"
		"        {{- '<|im_end|>\\n' }}\n"
		"    {%- else %}\n"
		"        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
		"    {%- endif %}\n"
		"{%- endfor %}\n"
		"{%- if add_generation_prompt %}\n"
		"    {{- '<|im_start|>assistant\\n' }}\n"
		"{%- endif %}\n";
	static const char *msgs =
		"[{\"role\":\"user\",\"content\":\"Weather?\"},"
		"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":"
		"{\"name\":\"get\",\"arguments\":{\"city\":\"Paris\",\"n\":2}}}]},"
		"{\"role\":\"tool\",\"content\":\"sunny\"}]";
	lg_buf		out;
	lg_error	err;

	(void) state;
	lg_buf_init(&out);
	assert_int_equal(render_full(tpl, msgs, NULL, NULL, true, &out, &err), LG_OK);
	assert_string_equal(out.data,
						"<|im_start|>user\nWeather?<|im_end|>\n"
						"<|im_start|>assistant\n<tool_call>\n{\"name\": \"get\", \"arguments\": {\"city\": \"Paris\", \"n\": 2}}\n</tool_call><|im_end|>\n"
						"<|im_start|>tool\nsunny<|im_end|>\n"
						"<|im_start|>assistant\n");
	lg_buf_free(&out);
}

typedef struct thread_arg
{
	const lg_chat_template *t;
	char		text[512];
	lg_status	st;
} thread_arg;

/* Render the shared template many times. */
static void *
render_thread(void *p)
{
	thread_arg *a = p;
	lg_chat_render_params rp = {.messages_json = MSGS, .messages_len = strlen(MSGS), .bos_token = "",
	.eos_token = "", .add_generation_prompt = true};

	for (int i = 0; i < 200; i++)
	{
		lg_buf		out;
		lg_error	err;

		lg_buf_init(&out);
		a->st = lg_chat_template_render(a->t, &rp, &out, &err);
		if (a->st == LG_OK)
			snprintf(a->text, sizeof(a->text), "%s", out.data);
		lg_buf_free(&out);
		if (a->st != LG_OK)
			break;
	}
	return NULL;
}

/* One parsed template rendered by several threads at once gives the same text. */
static void
test_threads(void **state)
{
	const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
		"{{ m.role|upper }}={{ m.content }};{% endfor %}{{ ns.n }}";
	lg_error	err;
	lg_chat_template *t = lg_chat_template_parse(src, strlen(src), &err);
	pthread_t	th[4];
	thread_arg	args[4];

	(void) state;
	assert_non_null(t);
	for (int i = 0; i < 4; i++)
	{
		args[i].t = t;
		args[i].st = LG_ERR_INTERNAL;
		assert_int_equal(pthread_create(&th[i], NULL, render_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
	{
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].st, LG_OK);
		assert_string_equal(args[i].text, "SYSTEM=Be brief.;USER=Hi é;2");
	}
	lg_chat_template_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_statements),
		cmocka_unit_test(test_set_and_scope),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_expressions),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_tests),
		cmocka_unit_test(test_undefined),
		cmocka_unit_test(test_globals),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_chatml_by_hand),
		cmocka_unit_test(test_threads),
	};

	/* strftime_now reads local time, as Python's datetime.now() does: pin it */
	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
