/* dlfm demo: a program with a few shared libraries found through RUNPATH,
 * one loaded with dlopen after main starts. */
#include <dlfcn.h>
#include <stdio.h>

int greet_width(void);
int shapes_area(int);
int units_scale(int);

int main(void)
{
    int total = greet_width() + shapes_area(7) + units_scale(3);
    void *h = dlopen("libplugin.so", RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*plugin)(int) = (int (*)(int))dlsym(h, "plugin_twice");
    printf("demo: total %d, plugin says %d\n", total, plugin(total));
    return 0;
}
