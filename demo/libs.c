/* The demo's libraries: each built from this file with one -D switch. */
#if defined(GREET)
int greet_width(void) { return 42; }
#elif defined(SHAPES)
int units_scale(int);
int shapes_area(int s) { return units_scale(s * s); }
#elif defined(UNITS)
int units_scale(int v) { return v * 10; }
#elif defined(PLUGIN)
int plugin_twice(int v) { return 2 * v; }
#endif
